# Copyright (c) mmdyt contributors. All rights reserved.
"""Inference-efficiency metric of DyT models."""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmdyt.models.dyt.stats import (DENSE_FLOPS_FIELD, FLOPS_FIELD,
                                    RATES_FIELD, VIEWS_FIELD)
from mmdyt.registry import METRICS


@METRICS.register_module()
class DyTEfficiencyMetric(BaseMetric):
    """Mean dynamic GFLOPs per sample and activation rates.

    Reads the ``dyt_flops`` and ``dyt_rates`` fields that DyT algorithms put
    on their predictions (counted from the tokens each sample really kept,
    summed over every backbone call the sample needed: the views of a video,
    the crops of a sliding-window segmentation) and reports:

    - ``gflops``: mean per sample (the paper's "average FLOPs"; per video
      for video models, per image for segmentation);
    - ``gflops_per_view``: mean per view, when the predictions carry
      ``dyt_num_views`` (video models);
    - ``dense_gflops``: the same mean for the dense host model on the same
      samples, when the predictions carry ``dyt_dense_flops``;
    - ``act_rate``: mean over samples and dispatchers;
    - ``act_rate_l{i}``: mean over samples of dispatcher ``i``.

    Use it next to the task metric::

        val_evaluator = [dict(type='Accuracy', topk=(1, )),
                         dict(type='mmdyt.DyTEfficiencyMetric')]

    Args:
        per_layer (bool): Report the rate of every dispatcher. Defaults to
            True.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Metric-name prefix. Defaults to ``'dyt'``.
    """
    default_prefix = 'dyt'

    def __init__(self,
                 per_layer: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.per_layer = per_layer

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if FLOPS_FIELD not in sample or RATES_FIELD not in sample:
                raise KeyError(
                    f'DyTEfficiencyMetric needs predictions with {FLOPS_FIELD}'
                    f' and {RATES_FIELD}; use a DyT model (e.g. '
                    "model.type='mmdyt.DyTImageClassifier')")
            self.results.append(
                (float(sample[FLOPS_FIELD]),
                 torch.as_tensor(sample[RATES_FIELD]).float(),
                 int(sample.get(VIEWS_FIELD, 0)),
                 float(sample.get(DENSE_FLOPS_FIELD, float('nan')))))

    def compute_metrics(self, results: List) -> dict:
        flops = torch.tensor([r[0] for r in results], dtype=torch.float64)
        rates = torch.stack([r[1] for r in results])
        views = torch.tensor([r[2] for r in results], dtype=torch.float64)
        metrics = dict(
            gflops=flops.mean().item() / 1e9, act_rate=rates.mean().item())
        if bool((views > 0).all()):
            metrics['gflops_per_view'] = (flops / views).mean().item() / 1e9
        elif bool((views > 0).any()):
            raise ValueError(f'only some predictions carry {VIEWS_FIELD}')
        dense = torch.tensor([r[3] for r in results], dtype=torch.float64)
        if not bool(dense.isnan().any()):
            metrics['dense_gflops'] = dense.mean().item() / 1e9
        if self.per_layer:
            for i, rate in enumerate(rates.mean(dim=0).tolist()):
                metrics[f'act_rate_l{i}'] = rate
        return metrics
