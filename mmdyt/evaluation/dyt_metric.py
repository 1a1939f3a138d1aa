# Copyright (c) mmdyt contributors. All rights reserved.
"""Inference-efficiency metric of DyT models."""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmdyt.registry import METRICS


@METRICS.register_module()
class DyTEfficiencyMetric(BaseMetric):
    """Mean dynamic GFLOPs per sample and activation rates.

    Reads the ``dyt_flops`` and ``dyt_rates`` fields that DyT models put on
    their predictions (counted from the tokens each sample really kept), and
    reports ``gflops`` (mean per sample, the paper's "average FLOPs"),
    ``act_rate`` (mean over samples and dispatchers) and ``act_rate_l{i}``
    (mean over samples, dispatcher ``i``). Use it next to the task metric::

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
            if 'dyt_flops' not in sample or 'dyt_rates' not in sample:
                raise KeyError(
                    'DyTEfficiencyMetric needs predictions with dyt_flops and '
                    'dyt_rates; use a DyT model (e.g. '
                    "model.type='mmdyt.DyTImageClassifier')")
            self.results.append(
                (float(sample['dyt_flops']),
                 torch.as_tensor(sample['dyt_rates']).float()))

    def compute_metrics(self, results: List) -> dict:
        flops = torch.tensor([r[0] for r in results], dtype=torch.float64)
        rates = torch.stack([r[1] for r in results])
        metrics = dict(
            gflops=flops.mean().item() / 1e9,
            act_rate=rates.mean().item())
        if self.per_layer:
            for i, rate in enumerate(rates.mean(dim=0).tolist()):
                metrics[f'act_rate_l{i}'] = rate
        return metrics
