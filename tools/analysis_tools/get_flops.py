# Copyright (c) mmdyt contributors. All rights reserved.
"""Static and dynamic FLOPs, and parameter counts, of a DyT model.

::

    python tools/analysis_tools/get_flops.py CONFIG [--checkpoint CKPT]
        [--num-batches 3] [--batch-size N] [--shape 224 [224]] [--traced]
        [--cfg-options k=v ...]

- **Static**: FLOPs of the dense host ViT (one multiply-add = one FLOP, the
  paper's convention; ViT-B/16 at 224 = 17.58 G) and of the DyT model with
  every token active, counted analytically (``mmdyt.models.dyt.flops``).
  ``--traced`` adds mmengine's traced count of the dense host backbone, once
  as is and once with the attention products written as explicit matmuls:
  the tracer does not see PyTorch's fused ``scaled_dot_product_attention``
  (ViT-B/16 reads 16.87 G instead of 17.58 G), the explicit trace matches the
  analytic count.
- **Dynamic**: the DyT model's per-sample FLOPs counted from the actual
  number of active tokens in every layer, averaged over ``--num-batches``
  batches of the config's test (or val) dataset; with ``--shape``, or when
  the dataset cannot be built, over synthetic images of that shape.
- **Parameters**: total, frozen, trainable, and the paper's "Params (M)":
  adapters only (MoE routers included, dispatchers and head excluded).

Counts include the head (a linear classifier of ``num_classes`` outputs).
``main(argv)`` returns everything as a dict.
"""
import argparse
import copy
import importlib.util
import os.path as osp

import torch

import mmdyt  # noqa: F401


def _benchmark_module():
    """Helpers shared with ``benchmark.py`` (``tools`` is no package)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark.py')
    spec = importlib.util.spec_from_file_location('mmdyt_tools_benchmark',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Static and dynamic FLOPs and parameters of a DyT model')
    parser.add_argument('config', help='config with a DyT backbone')
    parser.add_argument('--checkpoint', help='checkpoint to load (optional)')
    parser.add_argument('--num-batches', type=int, default=3,
                        help='batches for the dynamic FLOPs (default 3)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='batch size (default: the dataloader\'s, or 8)')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=None,
        help='use synthetic inputs of this size (H [W]) instead of the '
        'config\'s dataset')
    parser.add_argument(
        '--traced', action='store_true',
        help='also count the dense backbone with mmengine\'s FlopAnalyzer')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', default=None,
                        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H or H W')
    if args.num_batches < 1:
        parser.error('--num-batches must be >= 1')
    return args


def count_params(model):
    """Total / frozen / trainable parameters, and the DyT parts."""
    counts = dict(total=0, frozen=0, trainable=0, adapters=0,
                  dispatchers=0, moe_routers=0, head=0)
    for name, p in model.named_parameters():
        n = p.numel()
        counts['total'] += n
        counts['trainable' if p.requires_grad else 'frozen'] += n
        if '.adapters.' in name:
            counts['adapters'] += n
            if '.router.' in name:
                counts['moe_routers'] += n
        elif '.dispatchers.' in name:
            counts['dispatchers'] += n
        if name.startswith('head.'):
            counts['head'] += n
    counts['paper_params'] = counts['adapters']  # "Params (M)" in the paper
    return counts


def _explicit_attention(query, key, value, attn_mask=None, dropout_p=0.,
                        **kwargs):
    """Scaled dot-product attention as matmuls (FLOP tracers see these)."""
    scores = query @ key.transpose(-2, -1) * query.shape[-1]**-0.5
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float('-inf')) \
            if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(dim=-1) @ value


def traced_flops(backbone, shape):
    """mmengine's traced FLOPs of ``backbone`` for one input of ``shape``:
    ``(fused SDPA as is, attention as explicit matmuls)``."""
    from mmengine.analysis import FlopAnalyzer
    x = torch.zeros(1, 3, *shape)

    def count():
        return FlopAnalyzer(backbone, (x, )).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False).total()

    fused = count()
    attns = [m for m in backbone.modules()
             if hasattr(m, 'scaled_dot_product_attention')]
    saved = [m.scaled_dot_product_attention for m in attns]
    try:
        for m in attns:
            m.scaled_dot_product_attention = _explicit_attention
        explicit = count()
    finally:
        for m, f in zip(attns, saved):
            m.scaled_dot_product_attention = f
    return fused, explicit


def _data_batches(cfg, args, shape, bm):
    """Yield ``(inputs, source)`` batches: the config's dataset, else synthetic
    images."""
    if args.shape is None:
        from mmengine.runner import Runner
        for key in ('test_dataloader', 'val_dataloader'):
            loader_cfg = cfg.get(key)
            if not loader_cfg:
                continue
            loader_cfg = copy.deepcopy(loader_cfg)
            loader_cfg['num_workers'] = 0
            loader_cfg['persistent_workers'] = False
            if args.batch_size:
                loader_cfg['batch_size'] = args.batch_size
            try:
                loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
                iterator = iter(loader)
                first = next(iterator)
            except Exception as e:  # noqa: BLE001  (missing data: fall back)
                print(f'get_flops: cannot read {key} ({type(e).__name__}: '
                      f'{e}); using synthetic images of {shape}')
                break
            source = f'{key} ({type(loader.dataset).__name__})'
            yield first, source
            for i, batch in enumerate(iterator):
                if i + 2 > args.num_batches:
                    return
                yield batch, source
            return
    for i in range(args.num_batches):
        imgs = bm.synthetic_images(args.batch_size or 8, shape[0],
                                   args.seed + i, 'cpu')
        if shape[1] != shape[0]:
            imgs = torch.nn.functional.interpolate(imgs, size=tuple(shape))
        yield imgs, f'synthetic {shape[0]}x{shape[1]}'


def main(argv=None):
    args = parse_args(argv)
    bm = _benchmark_module()
    from mmdyt.apis import init_dyt_model, load_config
    from mmdyt.models.dyt import model_flops

    cfg = load_config(args.config, args.cfg_options)
    model = init_dyt_model(cfg, args.checkpoint)
    backbone = model.backbone
    num_classes = getattr(getattr(model, 'head', None), 'num_classes', 0) \
        or 0
    img_size = backbone.img_size if hasattr(backbone, 'img_size') else 224
    if args.shape is not None:
        shape = (args.shape[0], args.shape[-1])
    else:
        shape = tuple(img_size) if isinstance(img_size, (tuple, list)) \
            else (img_size, img_size)

    # ---- static
    patch = backbone.patch_embed.projection.kernel_size
    num_tokens = (shape[0] // patch[0]) * (shape[1] // patch[1]) + \
        backbone.num_extra_tokens
    spec = backbone.dyt_flops_spec(num_tokens, num_classes)
    dense_spec = spec.dense()
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        input_shape=shape,
        num_classes=num_classes,
        dense_gflops=model_flops(dense_spec) / 1e9,
        dyt_complete_gflops=model_flops(spec) / 1e9,
        params=count_params(model),
    )
    if args.traced:
        dense = bm.build_dense_twin(cfg, backbone)
        fused, explicit = traced_flops(dense, shape)
        result['traced_dense_backbone_gflops_sdpa'] = fused / 1e9
        result['traced_dense_backbone_gflops_explicit'] = explicit / 1e9
        result['analytic_dense_backbone_gflops'] = model_flops(
            spec.dense(num_classes=0)) / 1e9

    # ---- dynamic
    flops, rates, source = [], [], None
    with torch.no_grad(), backbone.dyt_mode('gathered', keep_masks=True):
        for i, (batch, source) in enumerate(
                _data_batches(cfg, args, shape, bm)):
            if i >= args.num_batches:
                break
            if isinstance(batch, dict):
                inputs = model.data_preprocessor(batch, False)['inputs']
            else:
                inputs = batch
            backbone(inputs)
            flops.append(backbone.dynamic_flops(num_classes))
            rates.append(backbone.layer_activation_rates())
    flops = torch.cat(flops)
    rates = torch.cat(rates)
    result.update(
        dynamic_source=source,
        num_samples=int(flops.numel()),
        dyt_gflops=float(flops.mean()) / 1e9,
        dyt_gflops_min=float(flops.min()) / 1e9,
        dyt_gflops_max=float(flops.max()) / 1e9,
        act_rate=float(rates.mean()),
        layer_act_rates=[round(float(r), 4) for r in rates.mean(dim=0)],
    )
    result['dyt_over_dense'] = result['dyt_gflops'] / result['dense_gflops']
    print_report(result)
    return result


def print_report(r):
    p = {k: v / 1e6 for k, v in r['params'].items()}
    lines = [
        f'Config: {r["config"]}' +
        (f' + {r["checkpoint"]}' if r['checkpoint'] else ''),
        f'Input: {r["input_shape"][0]}x{r["input_shape"][1]}, head: '
        f'{r["num_classes"]} classes; 1 multiply-add = 1 FLOP',
        f'Static  dense host ViT      : {r["dense_gflops"]:.3f} GFLOPs',
        f'Static  DyT, all tokens     : {r["dyt_complete_gflops"]:.3f} GFLOPs',
    ]
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
        f'({100 * r["dyt_over_dense"]:.1f}% of dense; per sample '
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
