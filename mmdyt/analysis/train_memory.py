# Copyright (c) mmdyt contributors. All rights reserved.
"""Peak memory of one training step: DyT vs full fine-tuning vs linear
probing, with and without activation checkpointing (``with_cp``).

On CPU there is no allocator with peak statistics, so
:class:`TensorMemoryTracker` counts at the tensor level: every storage that
an ATen operator creates (forward, backward, recomputation, optimizer) is
added when it is created and subtracted when it dies, on top of the
storages that exist before the step (parameters, buffers, optimizer state,
the input batch). Each live byte is tagged with the phase that created it,
so the peak splits into what was there before the step, what the forward
pass left for the backward pass (activations), and what the backward pass
and the optimizer made (gradients, temporaries). Memory that a kernel uses
internally and frees before it returns is not seen. On CUDA the allocator's
own ``max_memory_allocated`` is used instead.
"""
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.checkpoint import checkpoint

#: what a training setting trains and whether it checkpoints its layers.
SETTINGS: Dict[str, dict] = {
    'full': dict(method='full', with_cp=False),
    'full_cp': dict(method='full', with_cp=True),
    'linear': dict(method='linear', with_cp=False),
    'dyt': dict(method='dyt', with_cp=False),
    'dyt_cp': dict(method='dyt', with_cp=True),
}
PHASES = ('static', 'forward', 'backward', 'optimizer')
MiB = 2.0**20


def _storage_key(storage) -> int:
    return storage._cdata


class TensorMemoryTracker(TorchDispatchMode):
    """Live and peak bytes of the tensor storages on one device.

    Inside the mode, every operator output that is a new storage (not a
    view or an in-place result, i.e. an output without alias annotation in
    the operator's schema) is counted until it is freed. Storages that
    existed before (register them with :meth:`add_static`) are counted as
    ``'static'``; the others carry the :attr:`phase` set when they were
    created.

    Args:
        device (str | torch.device): Device whose storages are counted.
            Defaults to ``'cpu'``.

    Example:
        >>> tracker = TensorMemoryTracker()
        >>> tracker.add_static(model.parameters())
        >>> with tracker:
        ...     tracker.phase = 'forward'
        ...     loss = model(x).sum()
        ...     tracker.phase = 'backward'
        ...     loss.backward()
        >>> tracker.peak, tracker.peak_by_phase
    """

    def __init__(self, device='cpu'):
        super().__init__()
        self.device = torch.device(device)
        self.phase = 'forward'
        self.live: Dict[int, tuple] = {}
        self.current = 0
        self.peak = 0
        self.by_phase = {p: 0 for p in PHASES}
        self.peak_by_phase = dict(self.by_phase)
        self._refs: List[weakref.ref] = []

    def _add(self, storage, phase: str) -> None:
        key = _storage_key(storage)
        if key in self.live:
            return
        nbytes = storage.nbytes()
        self.live[key] = (nbytes, phase)
        self.current += nbytes
        self.by_phase[phase] += nbytes
        self._refs.append(weakref.ref(storage, lambda _, k=key: self._free(k)))
        if self.current > self.peak:
            self.peak = self.current
            self.peak_by_phase = dict(self.by_phase)

    def _free(self, key: int) -> None:
        entry = self.live.pop(key, None)
        if entry is not None:
            self.current -= entry[0]
            self.by_phase[entry[1]] -= entry[0]

    def add_static(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count tensors that exist before the step (weights, optimizer
        state, inputs) once each, as ``'static'``."""
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.device == self.device:
                self._add(t.untyped_storage(), 'static')

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        flat = out if isinstance(out, (tuple, list)) else (out, )
        for i, item in enumerate(flat):
            aliased = i < len(returns) and returns[i].alias_info is not None
            if aliased:
                continue
            for t in tree_flatten(item)[0]:
                if isinstance(t, torch.Tensor) and t.device == self.device:
                    self._add(t.untyped_storage(), self.phase)
        return out


@dataclass
class StepMemory:
    """Memory and time of one training step of one setting (bytes, s)."""
    setting: str
    peak: int
    params: int
    trainable_params: int
    optimizer_state: int
    inputs: int
    peak_by_phase: Dict[str, int] = field(default_factory=dict)
    time_s: float = float('nan')
    device: str = 'cpu'

    @property
    def activations_at_peak(self) -> int:
        """Bytes the forward pass created that were alive at the peak:
        what was kept for the backward pass."""
        return self.peak_by_phase.get('forward', 0)

    def as_dict(self) -> dict:
        out = asdict(self)
        out['activations_at_peak'] = self.activations_at_peak
        return out


def _optimizer_state(optimizer: torch.optim.Optimizer) -> List[torch.Tensor]:
    return [
        v for state in optimizer.state.values() for v in state.values()
        if isinstance(v, torch.Tensor)
    ]


def _nbytes(tensors: Iterable[torch.Tensor]) -> int:
    seen = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[_storage_key(st)] = st.nbytes()
    return sum(seen.values())


def init_optimizer_state_(model: nn.Module,
                          optimizer: torch.optim.Optimizer) -> None:
    """Create the optimizer's state (one step on zero gradients), so that a
    measured step sees it as in every step after the first."""
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure_training_step(setting: str,
                          model: nn.Module,
                          optimizer: torch.optim.Optimizer,
                          loss_fn: Callable[[], torch.Tensor],
                          inputs: Sequence[torch.Tensor] = (),
                          timed: bool = True) -> StepMemory:
    """Peak memory (and time) of ``loss_fn()`` + backward + optimizer step.

    The optimizer state is created first (:func:`init_optimizer_state_`).
    On CPU the peak comes from a :class:`TensorMemoryTracker`, on CUDA from
    ``torch.cuda.max_memory_allocated``; the time from a second, untracked
    step (``timed``).

    Args:
        setting (str): Name of the setting (a row label).
        model (nn.Module): The model, in train mode.
        optimizer (Optimizer): Over the trainable parameters.
        loss_fn (callable): Runs the forward pass, returns the loss.
        inputs (list[Tensor]): The batch (counted as present before).
        timed (bool): Time a second step. Defaults to True.

    Returns:
        StepMemory: The measurement.
    """
    device = next(model.parameters()).device
    init_optimizer_state_(model, optimizer)
    params = list(model.parameters()) + list(model.buffers())
    state = _optimizer_state(optimizer)

    def run(tracker=None):

        def set_phase(phase):
            if tracker is not None:
                tracker.phase = phase

        set_phase('forward')
        loss = loss_fn()
        set_phase('backward')
        loss.backward()
        set_phase('optimizer')
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del loss

    by_phase = {}
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        tracker = TensorMemoryTracker(device)
        tracker.add_static(params)
        tracker.add_static(state)
        tracker.add_static(inputs)
        with tracker:
            run(tracker)
        peak, by_phase = tracker.peak, tracker.peak_by_phase
    seconds = float('nan')
    if timed:
        start = time.perf_counter()
        run()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return StepMemory(
        setting=setting,
        peak=peak,
        params=_nbytes(params),
        trainable_params=_nbytes(p for p in model.parameters()
                                 if p.requires_grad),
        optimizer_state=_nbytes(state),
        inputs=_nbytes(inputs),
        peak_by_phase=by_phase,
        time_s=seconds,
        device=str(device))


class _CheckpointedLayer(nn.Module):
    """A host layer run under ``torch.utils.checkpoint`` (the full
    fine-tuning baseline's ``with_cp``: mmpretrain's ViT has none)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x, *args, **kwargs):
        if not torch.is_grad_enabled():
            return self.layer(x, *args, **kwargs)
        return checkpoint(
            self.layer,
            x,
            *args,
            use_reentrant=False,
            preserve_rng_state=True,
            **kwargs)


def build_vit_classifier(method: str,
                         with_cp: bool = False,
                         arch: str = 'b',
                         img_size: int = 224,
                         patch_size: int = 16,
                         num_classes: int = 100,
                         dyt: Optional[dict] = None) -> nn.Module:
    """An mmpretrain ViT classifier for one training setting.

    Args:
        method (str): ``'full'`` (every weight trains), ``'linear'`` (only
            the head trains) or ``'dyt'`` (DyT: adapters, dispatchers and
            the head train; the loss has the complete pass, the
            distillation and the rate terms).
        with_cp (bool): Checkpoint every layer (DyT: the backbone's
            ``with_cp``; full tuning: each host layer wrapped in a
            checkpoint; linear probing: ignored, no gradient reaches the
            backbone).
        arch (str | dict): mmpretrain ViT arch. Defaults to ``'b'``.
        img_size (int): Input size. Defaults to 224.
        patch_size (int): Patch size. Defaults to 16 (ViT-B/16).
        num_classes (int): Classes of the linear head. Defaults to 100.
        dyt (dict, optional): The DyT block (paper defaults).

    Returns:
        nn.Module: The classifier in train mode (random weights).
    """
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    if method not in ('full', 'linear', 'dyt'):
        raise ValueError("method must be one of ['full', 'linear', 'dyt'], "
                         f'got {method!r}')
    backbone = dict(
        arch=arch, img_size=img_size, patch_size=patch_size, drop_rate=0.0)
    if method == 'dyt':
        backbone.update(
            type='mmdyt.DyTVisionTransformer',
            with_cp=with_cp,
            dyt=dyt or dict(bottleneck=64))
        cfg = dict(type='mmdyt.DyTImageClassifier', target_rate=0.5)
    else:
        backbone.update(type='VisionTransformer')
        cfg = dict(type='ImageClassifier')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                **cfg,
                backbone=backbone,
                head=dict(
                    type='LinearClsHead',
                    num_classes=num_classes,
                    in_channels=model_dims(arch))))
    if method == 'linear':
        model.backbone.requires_grad_(False)
    if method == 'full' and with_cp:
        for i, layer in enumerate(model.backbone.layers):
            model.backbone.layers[i] = _CheckpointedLayer(layer)
    model.train()
    return model


def model_dims(arch) -> int:
    """Channels of an mmpretrain ViT ``arch`` (a name or a dict)."""
    if isinstance(arch, dict):
        return arch['embed_dims']
    from mmpretrain.models import VisionTransformer
    return VisionTransformer.arch_zoo[arch]['embed_dims']


def measure_vit_settings(
        settings: Sequence[str] = tuple(SETTINGS),
        batch_size: int = 8,
        arch: str = 'b',
        img_size: int = 224,
        patch_size: int = 16,
        num_classes: int = 100,
        device: str = 'cpu',
        timed: bool = True,
        seed: int = 0,
        dyt: Optional[dict] = None,
        log: Optional[Callable[[str], None]] = None) -> List[StepMemory]:
    """:func:`measure_training_step` of every setting in ``settings`` (keys
    of :data:`SETTINGS`), one model at a time, AdamW (lr 1e-3, weight decay
    0.01) over the trainable parameters, on the same random batch.
    ``dyt`` is the DyT block of the ``dyt`` settings (paper defaults when
    None); ``log`` receives one line per setting as it is measured.

    Returns:
        list[StepMemory]: One per setting, in order.
    """
    from mmpretrain.structures import DataSample

    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f'unknown setting(s) {unknown}; allowed: '
                         f'{list(SETTINGS)}')
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(
        batch_size, 3, img_size, img_size, generator=g).to(device)
    labels = torch.randint(0, num_classes, (batch_size, ), generator=g)
    results = []
    for name in settings:
        torch.manual_seed(seed)
        model = build_vit_classifier(
            patch_size=patch_size,
            arch=arch,
            img_size=img_size,
            num_classes=num_classes,
            dyt=dyt,
            **SETTINGS[name]).to(device)
        samples = [DataSample().set_gt_label(int(y)) for y in labels]
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=1e-3,
            weight_decay=0.01)

        def loss_fn(model=model):
            losses = model.loss(inputs, samples)
            return sum(v for k, v in losses.items() if k.startswith('loss'))

        results.append(
            measure_training_step(name, model, optimizer, loss_fn, [inputs],
                                  timed))
        if log is not None:
            log(format_row(results[-1]))
        del model, optimizer
    return results


def format_row(r: StepMemory) -> str:
    return (f'{r.setting}: peak {r.peak / MiB:.0f} MiB (params '
            f'{r.params / MiB:.0f}, optimizer state '
            f'{r.optimizer_state / MiB:.0f}, activations at peak '
            f'{r.activations_at_peak / MiB:.0f}), {r.time_s:.1f} s')


def format_table(results: Sequence[StepMemory],
                 reference: str = 'full') -> str:
    """A Markdown table of ``results``; ``x full`` is each peak over the
    peak of the ``reference`` setting (when it was measured)."""
    ref = next((r.peak for r in results if r.setting == reference), None)
    lines = [
        '| setting | peak MiB | x full | params MiB | trainable MiB | '
        'optimizer state MiB | activations at peak MiB | backward + '
        'optimizer at peak MiB | step s |',
        '|---|---|---|---|---|---|---|---|---|'
    ]
    for r in results:
        ratio = f'{r.peak / ref:.2f}' if ref else '-'
        later = r.peak_by_phase.get('backward', 0) + \
            r.peak_by_phase.get('optimizer', 0)
        lines.append(
            f'| {r.setting} | {r.peak / MiB:.0f} | {ratio} | '
            f'{r.params / MiB:.0f} | {r.trainable_params / MiB:.1f} | '
            f'{r.optimizer_state / MiB:.1f} | '
            f'{r.activations_at_peak / MiB:.0f} | {later / MiB:.0f} | '
            f'{r.time_s:.1f} |')
    return '\n'.join(lines)
