# Copyright (c) mmdyt contributors. All rights reserved.
"""``benchmark.py --backend onnxruntime``: the DyT backbone exported to ONNX
against the dense host backbone exported the same way (same weights, same
exporter, same wrapper), timed in ONNX Runtime, interleaved with both
PyTorch eager models in one loop."""
import os
import os.path as osp
import statistics
import tempfile
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .export import prepare_for_export, torchscript_export
from .host_patches import host_export_patches


class BackboneOutput(nn.Module):
    """A backbone's last output tensor (what ``benchmark.py`` times at
    ``--level backbone``), exportable."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, inputs: Tensor) -> Tensor:
        out = self.backbone(inputs)
        while isinstance(out, (tuple, list)):
            out = out[-1]
        return out


def export_backbone(backbone: nn.Module,
                    path: str,
                    inputs: Tensor,
                    opset: int = 17) -> str:
    """Export ``BackboneOutput(backbone)`` with a dynamic batch (a DyT
    backbone in its gathered mode, a dense one as it is)."""
    module = BackboneOutput(backbone).eval()
    with torch.no_grad(), host_export_patches():
        torchscript_export(module, inputs, path, opset)
    return path


def benchmark_onnxruntime(target,
                          batch_size: int,
                          seed: int,
                          shape: Optional[Sequence[int]],
                          repeats: int,
                          warmup: int,
                          threads: int,
                          onnx_dir: Optional[str] = None) -> dict:
    """Time DyT ONNX, dense ONNX, DyT eager and dense eager, interleaved.

    Args:
        target: The benchmark's :class:`~mmdyt.analysis.Target`
            (``--level backbone``), dispatchers already calibrated.
        batch_size (int): Samples per run.
        seed (int): Seed of the synthetic inputs (the target's).
        shape (tuple, optional): ``(H, W)`` override.
        repeats (int): Timed repetitions per runner.
        warmup (int): Untimed runs per runner first.
        threads (int): ONNX Runtime intra-op threads, and PyTorch's threads.
        onnx_dir (str, optional): Where the two files go (a temporary
            folder by default, removed after).

    Returns:
        dict: ``times`` per runner (``dense``, ``dyt`` for ONNX Runtime;
        ``dense_pytorch``, ``dyt_pytorch`` for eager) and ``files``.
    """
    from mmdyt.analysis import example_batch, time_interleaved
    from .runtime import ort_session
    torch.set_num_threads(threads)
    model = target.model
    inputs, _ = example_batch(model, 'backbone', batch_size, seed, shape)
    tmp = None
    if onnx_dir is None:
        tmp = tempfile.TemporaryDirectory()
        onnx_dir = tmp.name
    os.makedirs(onnx_dir, exist_ok=True)
    try:
        dyt_path = osp.join(onnx_dir, 'dyt_backbone.onnx')
        dense_path = osp.join(onnx_dir, 'dense_backbone.onnx')
        example = inputs[:2]
        with prepare_for_export(model, 'gather'):
            export_backbone(model.backbone, dyt_path, example)
        dense = model.backbone.build_dense_twin()
        export_backbone(dense, dense_path, example)
        sessions = {
            name: ort_session(path, threads)
            for name, path in (('dyt', dyt_path), ('dense', dense_path))
        }
        x = inputs.numpy()
        feeds = {
            name: {
                s.get_inputs()[0].name: x
            }
            for name, s in sessions.items()
        }
        runners = {
            'dense': lambda: sessions['dense'].run(None, feeds['dense']),
            'dyt': lambda: sessions['dyt'].run(None, feeds['dyt']),
            'dense_pytorch': target.run_dense,
            'dyt_pytorch': target.run,
        }
        times = time_interleaved(runners, repeats, warmup, torch.device('cpu'))
        # ORT's output vs PyTorch's (the benchmark's own check)
        ref = BackboneOutput(model.backbone)
        with torch.no_grad(), model.backbone.dyt_mode('gathered'):
            diff = float(
                abs(
                    ref(inputs).numpy() -
                    sessions['dyt'].run(None, feeds['dyt'])[0]).max())
    finally:
        if tmp is not None:
            tmp.cleanup()
    return dict(
        times=times,
        max_abs_diff=diff,
        files=None if tmp is not None else [dyt_path, dense_path])


def spread(times: Sequence[float]) -> dict:
    """Median, min, max and the interquartile range of ``times`` (s)."""
    q = statistics.quantiles(times, n=4) if len(times) > 1 else \
        [times[0]] * 3
    return dict(
        median=statistics.median(times),
        min=min(times),
        max=max(times),
        q1=q[0],
        q3=q[2])


def onnxruntime_fields(ort: dict, batch_size: int, threads: int) -> dict:
    """The extra fields of an ONNX Runtime benchmark result: backend,
    threads, the eager models' speeds and the spreads of all four."""
    times = ort['times']
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(
        backend='onnxruntime',
        ort_threads=threads,
        onnx_max_abs_diff=ort['max_abs_diff'],
        onnx_files=ort['files'],
        pytorch=dict(
            img_s_dense=batch_size / med['dense_pytorch'],
            img_s_dyt=batch_size / med['dyt_pytorch'],
            speedup=statistics.median(
                d / t
                for d, t in zip(times['dense_pytorch'], times['dyt_pytorch'])),
            onnx_dyt_vs_pytorch_dyt=statistics.median(
                p / o for p, o in zip(times['dyt_pytorch'], times['dyt'])),
            onnx_dyt_vs_pytorch_dense=statistics.median(
                p / o for p, o in zip(times['dense_pytorch'], times['dyt'])),
            onnx_dense_vs_pytorch_dense=statistics.median(
                p / o for p, o in zip(times['dense_pytorch'], times['dense'])),
            times_dense=times['dense_pytorch'],
            times_dyt=times['dyt_pytorch']),
        spread={
            k: spread(v)
            for k, v in times.items()
        })


def print_onnxruntime(r: dict) -> None:
    """The ONNX Runtime part of the benchmark's report."""
    p = r['pytorch']
    print(f'  backend onnxruntime ({r["ort_threads"]} intra-op threads, '
          f'PyTorch {r["threads"]} threads): dense / dyt rows above are the '
          'ONNX models; max |ORT - PyTorch| of the DyT output '
          f'{r["onnx_max_abs_diff"]:.2e}')
    print(f'  PyTorch eager: dense {p["img_s_dense"]:.2f} img/s, DyT '
          f'{p["img_s_dyt"]:.2f} img/s, speedup {p["speedup"]:.3f}')
    print(f'  DyT ONNX vs DyT eager {p["onnx_dyt_vs_pytorch_dyt"]:.3f}x, vs '
          f'dense eager {p["onnx_dyt_vs_pytorch_dense"]:.3f}x; dense ONNX vs '
          f'dense eager {p["onnx_dense_vs_pytorch_dense"]:.3f}x')
    for name, s in r['spread'].items():
        print(f'  {name:<14} median {s["median"]:.4f} s  '
              f'(IQR {s["q1"]:.4f}-{s["q3"]:.4f}, min {s["min"]:.4f}, '
              f'max {s["max"]:.4f})')
