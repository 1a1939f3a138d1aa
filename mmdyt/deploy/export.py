# Copyright (c) mmdyt contributors. All rights reserved.
"""ONNX export of DyT models with the token skipping in the graph.

Two modes:

- ``gather`` (default): the model's own gathered path. Per sample and
  dispatcher, the tokens whose score passes the threshold (offset and cap
  included) are taken with ``nonzero`` of the flattened ``(B * N)`` mask
  (ONNX ``NonZero``), gathered (``Gather``), run through the frozen MLP and
  added back (``ScatterND``). Token counts stay data-dependent, the batch
  axis is dynamic.
- ``topk``: every dispatcher keeps exactly ``k = ceil(R * (N - P))``
  non-prefix tokens per sample, its ``k`` highest scores, plus the prefix
  (CLS) tokens: ``TopK`` replaces ``NonZero`` and every shape is static
  given the batch (:meth:`TokenDispatcher.set_topk_rate_`).

Both run the core's code (:mod:`mmdyt.models.dyt.layer`); what this module
adds is the task wrapper (input tensor -> output tensor), the checks and two
export-time adjustments: in-place writes of the gathered path become
out-of-place while exporting (the core does it, see
:func:`mmdyt.models.dyt.layer.is_exporting`), and mmcv's ``Linear`` wrapper,
whose empty-input check reads the data-dependent token count, runs as plain
``torch.nn.Linear`` (same weights, same result for non-empty inputs).

Exporter: by default the TorchScript one (``torch.onnx.export(...,
dynamo=False)``). It records ``nonzero``, ``topk`` and ``index_add`` as
NonZero / TopK / ScatterElements, and the data-dependent sizes stay tensors
in the graph; the out-of-place ``index_add`` is what makes its trace correct
(the in-place one into a view is dropped silently by the trace, which is why
a plain export of the eager model is wrong). It exports in seconds and
handles every task here. ``exporter='dynamo'`` (``torch.export``) also gives
a correct graph once mmcv's ``Linear`` check is bypassed (it failed on the
data-dependent count before), but takes far longer.
"""
from contextlib import contextmanager
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .errors import DeployError
from .host_patches import host_export_patches
from .wrappers import build_deploy_module, example_input, model_task

#: export modes.
EXPORT_MODES = ('gather', 'topk')
#: dispatch variants that export (``model.backbone.dyt.variant``).
EXPORT_VARIANTS = ('mlp', )


def check_exportable(model: nn.Module, mode: str) -> None:
    """Raise :class:`DeployError` for an unsupported mode or variant."""
    if mode not in EXPORT_MODES:
        raise DeployError(f'--mode must be one of {list(EXPORT_MODES)}, got '
                          f'{mode!r}')
    model_task(model)
    variant = model.backbone.dyt_cfg['variant']
    if variant not in EXPORT_VARIANTS:
        raise DeployError(
            f'ONNX export (--mode {mode}) supports '
            f'model.backbone.dyt.variant in {list(EXPORT_VARIANTS)}, got '
            f'{variant!r}: the attention-dispatch variants pack a '
            'data-dependent number of tokens per sample for attention, '
            'which this exporter does not trace')


def _dispatchers(model: nn.Module):
    return model.backbone.dispatchers()


@contextmanager
def prepare_for_export(model: nn.Module,
                       mode: str = 'gather',
                       rate: Optional[float] = None):
    """Put ``model`` in the state the export traces; restored on exit.

    Eval mode, gathered DyT mode, the host patches
    (:func:`host_export_patches`) and, for ``topk``, the fixed-count rule
    at ``rate`` on every dispatcher.

    Raises:
        DeployError: For an unsupported mode / variant, a ``topk`` export
            without a rate in (0, 1], or a ``rate`` with ``gather``.
    """
    check_exportable(model, mode)
    if mode == 'topk':
        if rate is None or not 0.0 < float(rate) <= 1.0:
            raise DeployError(f'--mode topk needs --rate in (0, 1], got '
                              f'{rate!r}')
    elif rate is not None:
        raise DeployError('--rate applies to --mode topk only; a gather '
                          'export keeps the checkpoint\'s dispatch (use '
                          'tools/analysis_tools/retarget.py to move it to '
                          'another rate first)')
    dispatchers = _dispatchers(model)
    saved = [td.topk_rate for td in dispatchers]
    was_training = model.training
    model.eval()
    try:
        for td in dispatchers:
            td.set_topk_rate_(float(rate) if mode == 'topk' else None)
        with host_export_patches(), model.backbone.dyt_mode('gathered'):
            yield model
    finally:
        for td, r in zip(dispatchers, saved):
            td.set_topk_rate_(r)
        model.train(was_training)


# ------------------------------------------------------------------ rates
def measured_rate(model: nn.Module, inputs: Tensor) -> float:
    """Mean over dispatchers of the token-weighted eval-mode activation rate
    of ``model`` on ``inputs`` (the deploy module's input)."""
    from mmdyt.models.dyt import DyTStats
    module = build_deploy_module(model)
    backbone = model.backbone
    with torch.no_grad(), backbone.dyt_mode('gathered'), \
            backbone.dyt_recording() as calls:
        module(inputs)
    stats = DyTStats.cat(calls)
    rates = stats.active.sum(0) / stats.tokens.sum(0).clamp_min(1)
    return float(rates.mean())


def default_topk_rate(model: nn.Module, checkpoint: Optional[dict],
                      inputs: Tensor) -> Tuple[float, str]:
    """``R`` of a ``topk`` export when none is given, and where it came
    from: the rate of a retargeted checkpoint (its
    ``meta['dyt_retarget']``), else the rate the checkpoint's dispatchers
    reach on ``inputs`` (:func:`measured_rate`)."""
    from mmdyt.apis.budget import RETARGET_META_KEY
    meta = ((checkpoint or {}).get('meta') or {}).get(RETARGET_META_KEY)
    if meta and meta.get('rate') is not None:
        return float(meta['rate']), 'the retargeted checkpoint\'s rate'
    rate = measured_rate(model, inputs)
    if rate <= 0.0:
        raise DeployError('the checkpoint keeps no token on the example '
                          'inputs; pass --rate for --mode topk')
    return min(1.0, rate), f'measured on {inputs.shape[0]} example inputs'


# ---------------------------------------------------------------- loading
def load_model(config,
               checkpoint: Optional[str] = None,
               cfg_options: Optional[Sequence[str]] = None):
    """Build the config's model and load ``checkpoint`` (full or delta),
    every key of the model required.

    Returns:
        tuple: ``(model, checkpoint_dict or None)``.

    Raises:
        DeployError: If the checkpoint does not fit the config (missing,
            unexpected or mis-shaped keys), is unreadable or is a delta
            whose base is missing; the message names both files and the
            checkpoint loader's reason.
    """
    from mmdyt.apis.model import init_dyt_model, load_config
    cfg = load_config(config, cfg_options) if isinstance(config, str) \
        else config
    model = init_dyt_model(cfg)
    ckpt = None
    if checkpoint:
        from mmdyt.checkpoint import load_dyt_checkpoint
        try:
            ckpt = load_dyt_checkpoint(model, checkpoint, strict=True)
        except RuntimeError as e:  # CheckpointError included
            name = getattr(cfg, 'filename', None) or 'the config'
            raise DeployError(
                f'checkpoint {checkpoint} cannot be exported with the model '
                f'of {name}: {str(e).strip()[:2000]}') from e
        model.eval()
    return model, ckpt


def tome_report(model: nn.Module) -> Optional[dict]:
    """The token merging baked into the graph of the last export (its
    schedule is fixed by the traced token count), or None when no layer
    merges (``model.backbone.tome`` unset or ``r=0``: the graph is DyT's).

    Returns:
        dict | None: ``r`` and ``prop_attn`` as configured, ``schedule``
        (tokens merged by each layer) and ``tokens`` (tokens entering each
        layer, then leaving the last one: what every dispatcher scores).
    """
    backbone = model.backbone
    cfg = getattr(backbone, 'tome_cfg', None)
    num_tokens = getattr(backbone, '_dyt_input_tokens', None)
    if cfg is None or num_tokens is None:
        return None
    schedule = backbone.tome_schedule(int(num_tokens))
    if not any(schedule):
        return None
    tokens = [int(num_tokens)]
    for r in schedule:
        tokens.append(tokens[-1] - r)
    r = cfg['r']
    return dict(
        r=list(r) if isinstance(r, tuple) else r,
        prop_attn=cfg['prop_attn'],
        schedule=schedule,
        tokens=tokens)


# ------------------------------------------------------------------ export
#: ``exporter`` values: torch.onnx's TorchScript exporter (default) and its
#: dynamo-based one (``torch.export``; needs ``onnxscript``).
EXPORTERS = ('torchscript', 'dynamo')


def torchscript_export(module: nn.Module, inputs: Tensor, path: str,
                       opset: int) -> None:
    """``torch.onnx.export`` with the TorchScript exporter: one input
    ``input`` and one output ``output``, both with a dynamic batch axis."""
    torch.onnx.export(
        module, (inputs, ),
        path,
        input_names=['input'],
        output_names=['output'],
        dynamic_axes={
            'input': {
                0: 'batch'
            },
            'output': {
                0: 'batch'
            }
        },
        opset_version=opset,
        do_constant_folding=True,
        dynamo=False)


def export_onnx(model: nn.Module,
                out: str,
                mode: str = 'gather',
                rate: Optional[float] = None,
                inputs: Optional[Tensor] = None,
                opset: int = 17,
                exporter: str = 'torchscript') -> dict:
    """Export ``model`` (an mmdyt algorithm) to ``out``.

    Args:
        model (nn.Module): The algorithm (``init_dyt_model``).
        out (str): The ``.onnx`` path.
        mode (str): ``'gather'`` or ``'topk'``.
        rate (float, optional): ``R`` of ``topk`` (required there).
        inputs (Tensor, optional): Example input of the deploy module
            (:func:`example_input` by default, batch 2).
        opset (int): ONNX opset, >= 16 (``index_add`` is a ScatterElements
            / ScatterND with ``reduction='add'``). Defaults to 17
            (``dynamo`` uses at least 18).
        exporter (str): ``'torchscript'`` (default:
            ``torch.onnx.export(dynamo=False)``, seconds) or ``'dynamo'``
            (``torch.export`` with a symbolic batch, minutes on ViT-B).

    Returns:
        dict: ``mode``, ``rate``, ``task``, ``input_shape``, ``exporter``,
        ``opset``, ``path`` and ``tome`` (the token-merging schedule in the
        graph, :func:`tome_report`; None without merging).
    """
    from .runtime import require_onnx
    require_onnx()
    task = model_task(model)
    if exporter not in EXPORTERS:
        raise DeployError(f'--exporter must be one of {list(EXPORTERS)}, '
                          f'got {exporter!r}')
    if inputs is None:
        inputs = example_input(model)
    if opset < 16:
        raise DeployError(f'--opset must be >= 16 (index_add exports as a '
                          f'scatter with reduction=add), got {opset}')
    names = dict(input_names=['input'], output_names=['output'])
    with prepare_for_export(model, mode, rate), torch.no_grad():
        module = build_deploy_module(model)
        if exporter == 'torchscript':
            torchscript_export(module, inputs, out, opset)
        else:
            batch = torch.export.Dim('batch', min=1, max=4096)
            torch.onnx.export(
                module, (inputs, ),
                out,
                dynamic_shapes={'inputs': {
                    0: batch
                }},
                opset_version=max(opset, 18),
                dynamo=True,
                **names)
    return dict(
        mode=mode,
        rate=rate,
        task=task,
        input_shape=list(inputs.shape[1:]),
        exporter=f'torch.onnx.export(dynamo={exporter == "dynamo"})',
        opset=opset if exporter == 'torchscript' else max(opset, 18),
        path=out,
        tome=tome_report(model))


@torch.no_grad()
def pytorch_output(model: nn.Module,
                   inputs: Tensor,
                   mode: str = 'gather',
                   rate: Optional[float] = None,
                   keep_masks: bool = False) -> Tensor:
    """The eager PyTorch output of the exported function (same mode and
    rate), the reference of ``--verify``; with ``keep_masks`` the
    backbone's ``dyt_masks`` are those of this pass."""
    check_exportable(model, mode)
    dispatchers = _dispatchers(model)
    saved = [td.topk_rate for td in dispatchers]
    try:
        for td in dispatchers:
            td.set_topk_rate_(float(rate) if mode == 'topk' else None)
        with model.backbone.dyt_mode('gathered', keep_masks=keep_masks):
            return build_deploy_module(model)(inputs)
    finally:
        for td, r in zip(dispatchers, saved):
            td.set_topk_rate_(r)


# ------------------------------------------------------- verify and report
def verify_onnx(model: nn.Module,
                path: str,
                mode: str = 'gather',
                rate: Optional[float] = None,
                batch_sizes: Sequence[int] = (1, 3),
                seeds: Sequence[int] = (1, 2),
                shape: Optional[Sequence[int]] = None,
                frames: Optional[int] = None,
                threads: Optional[int] = None) -> dict:
    """Run ``path`` in ONNX Runtime and the model in PyTorch (same mode and
    rate) on synthetic inputs of every batch size and seed.

    Returns:
        dict: ``max_abs_diff`` (the largest over all runs) and ``runs``
        (``batch``, ``seed``, ``max_abs_diff`` of each).
    """
    from .runtime import ort_session, run_session
    session = ort_session(path, threads)
    runs = []
    for batch in batch_sizes:
        for seed in seeds:
            x = example_input(model, batch, seed, shape, frames)
            ref = pytorch_output(model, x, mode, rate).cpu().numpy()
            out = run_session(session, x)
            if out.shape != ref.shape:
                raise AssertionError(f'ORT output {out.shape} vs PyTorch '
                                     f'{ref.shape} at batch {batch}')
            runs.append(
                dict(
                    batch=batch,
                    seed=seed,
                    max_abs_diff=float(abs(out - ref).max())))
    return dict(max_abs_diff=max(r['max_abs_diff'] for r in runs), runs=runs)


def export_checkpoint(config,
                      checkpoint: Optional[str],
                      out: str,
                      mode: str = 'gather',
                      rate: Optional[float] = None,
                      shape: Optional[Sequence[int]] = None,
                      frames: Optional[int] = None,
                      opset: int = 17,
                      verify: bool = False,
                      cfg_options: Optional[Sequence[str]] = None,
                      exporter: str = 'torchscript') -> dict:
    """Config + checkpoint -> ``out`` (what ``tools/deployment/
    export_onnx.py`` runs).

    Args:
        config (str | Config): The model's config.
        checkpoint (str, optional): Full or delta checkpoint; None keeps
            the config's initial weights.
        out (str): The ``.onnx`` path.
        mode (str): ``'gather'`` or ``'topk'``.
        rate (float, optional): ``topk``'s ``R``; None: the checkpoint's
            (:func:`default_topk_rate`).
        shape (tuple, optional): ``(H, W)`` of the example input (the
            backbone's ``img_size`` by default); fixed in the graph.
        frames (int, optional): Frames per clip (video; the config's
            ``num_frames`` by default).
        opset (int): ONNX opset.
        verify (bool): Compare ORT with PyTorch (:func:`verify_onnx`).
        cfg_options (list[str], optional): ``key=value`` config overrides.
        exporter (str): ``'torchscript'`` or ``'dynamo'``
            (:func:`export_onnx`).

    Returns:
        dict: The export's report (see :func:`export_onnx`), with
        ``rate_source`` and ``verify`` when they apply.
    """
    model, ckpt = load_model(config, checkpoint, cfg_options)
    task = model_task(model)
    if frames is not None and task != 'video':
        raise DeployError('--frames applies to video recognizers only')
    if frames is not None and frames != model.num_frames:
        raise DeployError(f'--frames {frames} differs from the config\'s '
                          f'model.num_frames={model.num_frames} (the head '
                          'is built for it)')
    inputs = example_input(model, 2, 0, shape, frames)
    source = None
    if mode == 'topk' and rate is None:
        check_exportable(model, mode)
        rate, source = default_topk_rate(
            model, ckpt, example_input(model, 8, 100, shape, frames))
    report = export_onnx(model, out, mode, rate, inputs, opset, exporter)
    if source:
        report['rate_source'] = source
    if verify:
        report['verify'] = verify_onnx(
            model, out, mode, rate, shape=shape, frames=frames)
    return report
