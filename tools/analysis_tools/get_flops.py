# Copyright (c) mmdyt contributors. All rights reserved.
"""Static and dynamic FLOPs, and parameter counts, of a DyT model.

::

    python tools/analysis_tools/get_flops.py CONFIG [--checkpoint CKPT]
        [--num-batches 3] [--batch-size N] [--synthetic] [--shape 224 [224]]
        [--traced] [--cfg-options k=v ...]

Works for a DyT model of any host (mmpretrain, mmseg, mmaction2): every
count comes from the model's own ``predict`` (a sample's FLOPs summed over
every backbone call it needs: views, frames, sliding-window crops; heads and
necks included), see :mod:`mmdyt.analysis`.

- **Static**: FLOPs per sample of the dense host model (one multiply-add = one
  FLOP, the paper's convention; ViT-B/16 at 224 = 17.58 G) and of the DyT
  model with every token active, counted analytically
  (``mmdyt.models.dyt.flops``) on one synthetic sample.
  ``--traced`` adds mmengine's traced count of the dense host backbone, once
  as is and once with the attention products written as explicit matmuls:
  the tracer does not see PyTorch's fused ``scaled_dot_product_attention``
  (ViT-B/16 reads 16.87 G instead of 17.58 G), the explicit trace matches the
  analytic count.
- **Dynamic**: the DyT model's per-sample FLOPs counted from the actual
  number of active tokens in every layer, averaged over ``--num-batches``
  batches of the config's test (or val) dataset, or, with ``--synthetic``
  or ``--shape``, of synthetic samples. A dataset that cannot be read is an
  error (pass ``--synthetic`` to count without it).
- **Breakdown**: a model with ``dyt_flops_breakdown(inputs, samples)``
  (``mmdyt.DyTEncoderDecoder``: backbone, neck, decode head, summed over
  the crops of its test mode) has the static dense count split by part.
- **Parameters**: total, frozen, trainable, and the paper's "Params (M)":
  adapters only (MoE routers included, dispatchers and head excluded).

``main(argv)`` returns everything as a dict.
"""
import argparse
import copy

import torch

import mmdyt  # noqa: F401


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Static and dynamic FLOPs and parameters of a DyT model')
    parser.add_argument('config', help='config with a DyT model')
    parser.add_argument('--checkpoint', help='checkpoint to load (optional)')
    parser.add_argument(
        '--num-batches',
        type=int,
        default=3,
        help='batches for the dynamic FLOPs (default 3)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='batch size (default: the dataloader\'s, or 8)')
    parser.add_argument(
        '--synthetic',
        action='store_true',
        help='count on synthetic samples instead of the config\'s dataset')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='synthetic samples of this spatial size (H [W]); implies '
        '--synthetic')
    parser.add_argument(
        '--traced',
        action='store_true',
        help='also count the dense backbone with mmengine\'s FlopAnalyzer')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H or H W')
    if args.num_batches < 1:
        parser.error('--num-batches must be >= 1')
    return args


def dataset_batches(cfg, num_batches, batch_size=None, seed=0):
    """Yield ``(data_batch, source)`` from the config's test (else val)
    dataloader; raises ``RuntimeError`` naming the key when it cannot be
    read."""
    from mmengine.runner import Runner
    for key in ('test_dataloader', 'val_dataloader'):
        loader_cfg = cfg.get(key)
        if not loader_cfg:
            continue
        loader_cfg = copy.deepcopy(loader_cfg)
        loader_cfg['num_workers'] = 0
        loader_cfg['persistent_workers'] = False
        if batch_size:
            loader_cfg['batch_size'] = batch_size
        try:
            loader = Runner.build_dataloader(loader_cfg, seed=seed)
            iterator = iter(loader)
            first = next(iterator)
        except Exception as e:  # noqa: BLE001  (re-raised with the key)
            raise RuntimeError(
                f'get_flops: cannot read {key}.dataset ({type(e).__name__}: '
                f'{e}); fix the data paths (--cfg-options '
                f'{key}.dataset.data_root=...) or count on synthetic '
                'samples with --synthetic') from e
        source = f'{key} ({type(loader.dataset).__name__})'
        yield first, source
        for i, batch in enumerate(iterator):
            if i + 2 > num_batches:
                return
            yield batch, source
        return
    raise RuntimeError('get_flops: the config has no test_dataloader or '
                       'val_dataloader; use --synthetic')


def main(argv=None):
    args = parse_args(argv)
    from mmdyt.analysis import (Measured, count_params, example_batch,
                                measured_from_predictions, traced_flops)
    from mmdyt.apis import init_dyt_model, load_config

    cfg = load_config(args.config, args.cfg_options)
    model = init_dyt_model(cfg, args.checkpoint)
    backbone = model.backbone
    shape = None if args.shape is None else (args.shape[0], args.shape[-1])

    # ---- static: one synthetic sample, every token active
    inputs, samples = example_batch(model, 'model', 1, args.seed, shape)
    with torch.no_grad(), backbone.dyt_mode('complete'):
        static = measured_from_predictions(model.predict(inputs, samples))
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        input_shape=tuple(inputs.shape[-2:]),
        sample_shape=tuple(inputs.shape[1:]),
        num_classes=next((getattr(getattr(model, key), 'num_classes', 0)
                          for key in ('head', 'cls_head', 'decode_head')
                          if getattr(model, key, None) is not None), 0)
        or getattr(model, 'num_classes', 0) or 0,
        dense_gflops=float(static.dense_flops[0]) / 1e9,
        dyt_complete_gflops=float(static.flops[0]) / 1e9,
        params=count_params(model),
    )
    if hasattr(model, 'dyt_flops_breakdown'):  # e.g. DyTEncoderDecoder
        parts = model.dyt_flops_breakdown(inputs, samples)
        result['dense_breakdown_gflops'] = {
            k: float(v[0]) / 1e9
            for k, v in parts.items()
        }
    if args.traced:
        x, _ = example_batch(model, 'backbone', 1, args.seed, shape)
        traced = traced_flops(backbone.build_dense_twin(), x)
        with torch.no_grad(), backbone.dyt_mode('complete', keep_masks=True):
            backbone(x)
        result['traced_dense_backbone_gflops_sdpa'] = traced['fused'] / 1e9
        result['traced_dense_backbone_gflops_explicit'] = \
            traced['explicit'] / 1e9
        result['analytic_dense_backbone_gflops'] = \
            backbone.dense_flops() / 1e9

    # ---- dynamic
    if args.synthetic or shape is not None:
        bs = args.batch_size or 8
        hw = result['input_shape']
        batches = ((example_batch(model, 'model', bs, args.seed + i,
                                  shape), f'synthetic {hw[0]}x{hw[1]}')
                   for i in range(args.num_batches))
    else:
        batches = dataset_batches(cfg, args.num_batches, args.batch_size,
                                  args.seed)
    parts, source = [], None
    with torch.no_grad(), backbone.dyt_mode('gathered'):
        for batch, source in batches:
            if isinstance(batch, dict):
                preds = model.test_step(batch)
            else:
                preds = model.predict(*batch)
            parts.append(measured_from_predictions(preds))
    dyn = Measured.cat(parts)
    summary = dyn.summary()
    result.update(
        dynamic_source=source,
        num_samples=int(dyn.flops.numel()),
        dyt_gflops=summary['gflops'],
        # the dense host on the same samples (their sizes and crops)
        dense_gflops_same_samples=summary['gflops_dense'],
        dyt_gflops_min=float(dyn.flops.min()) / 1e9,
        dyt_gflops_max=float(dyn.flops.max()) / 1e9,
        act_rate=summary['act_rate'],
        layer_act_rates=[round(r, 4) for r in summary['layer_act_rates']],
    )
    result['dyt_over_dense'] = \
        result['dyt_gflops'] / result['dense_gflops_same_samples']
    print_report(result)
    return result


def print_report(r):
    p = {k: v / 1e6 for k, v in r['params'].items()}
    lines = [
        f'Config: {r["config"]}' +
        (f' + {r["checkpoint"]}' if r['checkpoint'] else ''),
        f'Input: {r["input_shape"][0]}x{r["input_shape"][1]} (sample '
        f'{r["sample_shape"]}), head: {r["num_classes"]} classes; 1 '
        'multiply-add = 1 FLOP; per sample, heads included',
        f'Static  dense host model    : {r["dense_gflops"]:.3f} GFLOPs',
        f'Static  DyT, all tokens     : {r["dyt_complete_gflops"]:.3f} GFLOPs',
    ]
    for part, g in r.get('dense_breakdown_gflops', {}).items():
        lines.append(f'  dense {part:<22}: {g:.3f} GFLOPs')
    if 'traced_dense_backbone_gflops_sdpa' in r:
        lines += [
            f'Traced  dense backbone      : '
            f'{r["traced_dense_backbone_gflops_sdpa"]:.3f} GFLOPs (fused '
            'SDPA, not seen by the tracer)',
            f'Traced  dense backbone      : '
            f'{r["traced_dense_backbone_gflops_explicit"]:.3f} GFLOPs '
            f'(explicit-matmul attention; analytic '
            f'{r["analytic_dense_backbone_gflops"]:.3f})',
        ]
    lines += [
        f'Dynamic DyT (mean)          : {r["dyt_gflops"]:.3f} GFLOPs '
        f'({100 * r["dyt_over_dense"]:.1f}% of the dense host\'s '
        f'{r["dense_gflops_same_samples"]:.3f} on the same samples; per '
        'sample '
        f'{r["dyt_gflops_min"]:.3f}-{r["dyt_gflops_max"]:.3f}) over '
        f'{r["num_samples"]} samples of {r["dynamic_source"]}',
        f'Activation rate             : {r["act_rate"]:.4f}; per '
        f'dispatcher {r["layer_act_rates"]}',
        f'Params total {p["total"]:.3f} M = frozen {p["frozen"]:.3f} M + '
        f'trainable {p["trainable"]:.4f} M',
        f'  trainable: adapters {p["adapters"]:.4f} M (MoE routers '
        f'{p["moe_routers"]:.4f} M), dispatchers {p["dispatchers"]:.4f} M, '
        f'head {p["head"]:.4f} M',
        f'  paper "Params (M)" (adapters only): {p["paper_params"]:.4f} M',
    ]
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
