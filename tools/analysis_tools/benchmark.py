# Copyright (c) mmdyt contributors. All rights reserved.
"""Inference speed of a DyT ViT against its dense host ViT, in one process.

Builds the DyT backbone of an mmpretrain config (``mmdyt.DyTVisionTransformer``)
and the dense host ``VisionTransformer`` with the same weights (the DyT
backbone's state dict minus ``dyt_layers``), then times the *backbone forward*
of both (heads excluded, the DyT backbone in its ``'gathered'`` inference
mode) on the same input batch, interleaved (the order alternates every
repetition), and reports medians::

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT]
        [--batch-size 32] [--device cpu|cuda] [--amp] [--rate 0.5]
        [--repeats 20] [--warmup 3] [--threads N] [--also CONFIG2 ...]
        [--out results.json]

Printed and returned (``main(argv)`` returns a dict): img/s of the dense and
the DyT model, the speedup (median of the per-repetition dense/DyT time
ratios), the measured activation rate (mean, min and max per sample), the
FLOPs of both models (analytic, from the actual masks, see
``mmdyt.models.dyt.flops``), the FLOPs bound ``dense / DyT`` and the speedup
as a fraction of that bound.

``--rate R`` calibrates every dispatcher on a separate calibration batch
(layer by layer, in one forward pass): its bias is shifted so that a fraction
``R`` of the tokens is active, the weights are kept, so the active tokens and
their number still depend on each sample. Without ``--rate`` and without a
checkpoint, fresh dispatchers activate about half of the tokens by chance
(as in the official speed test).

``--also`` times further DyT configs (e.g. the MoE adapter) in the same loop,
with the same host weights and, when the dispatch variant matches, the same
dispatchers as the main one (so the same tokens are active).

Inputs are synthetic images (smooth random structure plus noise, different
per sample). Timings on shared or small machines are noisy; only the ratios
of interleaved runs in one process mean much. The allocator (glibc malloc or
a preloaded jemalloc/tcmalloc) and the thread count are reported. ``--amp``
runs under ``torch.autocast`` (float16 on CUDA, bfloat16 on CPU).
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

import mmdyt  # noqa: F401  (registers the mmdyt scope)
from mmdyt.apis import init_dyt_model, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time a DyT ViT against its dense host ViT (same weights, '
        'same process, interleaved)')
    parser.add_argument('config', help='mmpretrain config with a DyT backbone')
    parser.add_argument('--checkpoint', help='checkpoint to load (optional)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--amp', action='store_true',
        help='autocast: float16 on cuda, bfloat16 on cpu')
    parser.add_argument(
        '--rate', type=float, default=None,
        help='calibrate the dispatchers to this activation rate (0..1)')
    parser.add_argument(
        '--calib-batch', type=int, default=8,
        help='calibration batch size for --rate (default 8)')
    parser.add_argument(
        '--repeats', type=int, default=20,
        help='timed forward passes per model (default 20)')
    parser.add_argument(
        '--warmup', type=int, default=3,
        help='untimed forward passes per model first (default 3)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--img-size', type=int, default=None,
                        help='input side (default: the backbone img_size)')
    parser.add_argument(
        '--also', nargs='+', default=[],
        help='further DyT configs to time in the same loop (e.g. MoE)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='also write the results to this JSON')
    parser.add_argument(
        '--cfg-options', nargs='+', default=None,
        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    if args.rate is not None and not 0.0 <= args.rate <= 1.0:
        parser.error(f'--rate must be in [0, 1], got {args.rate}')
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error('--batch-size and --repeats must be >= 1, --warmup >= 0')
    return args


# ---------------------------------------------------------------- building
def build_dyt_backbone(cfg, checkpoint=None):
    """The config's (classifier's) DyT backbone, weights from ``checkpoint``,
    in eval mode with gradients off."""
    backbone = getattr(init_dyt_model(cfg, checkpoint), 'backbone')
    backbone.requires_grad_(False)
    return backbone


def build_dense_twin(cfg, dyt_backbone):
    """mmpretrain's ``VisionTransformer`` with the DyT backbone's host weights."""
    from mmpretrain.models import VisionTransformer
    kwargs = copy.deepcopy(dict(cfg.model.backbone))
    kwargs.pop('type')
    kwargs.pop('dyt', None)
    kwargs.pop('init_cfg', None)
    dense = VisionTransformer(**kwargs)
    state = {
        k: v
        for k, v in dyt_backbone.state_dict().items()
        if not k.startswith('dyt_layers.')
    }
    dense.load_state_dict(state, strict=True)
    dense.eval()
    dense.requires_grad_(False)
    return dense


def synthetic_images(batch, size, seed, device):
    """Normalised images with per-sample structure (smooth colour fields of
    random scale plus pixel noise), so tokens and dispatch differ by sample."""
    g = torch.Generator().manual_seed(seed)
    imgs = []
    for _ in range(batch):
        cells = int(torch.randint(2, 9, (1, ), generator=g))
        low = torch.randn(1, 3, cells, cells, generator=g)
        img = F.interpolate(low, size=(size, size), mode='bilinear',
                            align_corners=False)
        contrast = float(torch.rand(1, generator=g)) * 1.5 + 0.25
        img = img * contrast + 0.3 * torch.randn(1, 3, size, size, generator=g)
        imgs.append(img)
    return torch.cat(imgs).to(device)


@torch.no_grad()
def calibrate_rate(backbone, images, rate):
    """Calibrate every dispatcher to ``rate`` on ``images`` (one gathered
    forward pass; each dispatcher is calibrated on its actual input, after the
    earlier layers have been calibrated). Returns the reached rates."""
    from mmdyt.models.dyt import TokenDispatcher
    reached = []
    hooks = []

    def hook(module, args):
        reached.append(module.calibrate_rate_(args[0], rate))

    for module in backbone.dyt_layers.modules():
        if isinstance(module, TokenDispatcher):
            hooks.append(module.register_forward_pre_hook(hook))
    try:
        with backbone.dyt_mode('gathered'):
            backbone(images)
    finally:
        for h in hooks:
            h.remove()
    return reached


def copy_dispatchers(src, dst):
    """Give ``dst`` the dispatchers of ``src`` (same variant and shapes)."""
    state = {
        k: v
        for k, v in src.state_dict().items()
        if k.startswith('dyt_layers.') and '.dispatchers.' in k
    }
    dst_state = dst.state_dict()
    if set(state) - set(dst_state) or any(
            dst_state[k].shape != v.shape for k, v in state.items()):
        return False
    dst.load_state_dict(state, strict=False)
    return True


def allocator_name():
    """Allocator of this process: a preloaded jemalloc / tcmalloc, or glibc."""
    try:
        with open('/proc/self/maps') as f:
            maps = f.read()
    except OSError:
        maps = os.environ.get('LD_PRELOAD', '')
    for name in ('jemalloc', 'tcmalloc', 'mimalloc'):
        if name in maps:
            conf = os.environ.get('MALLOC_CONF', '')
            return name + (f' (MALLOC_CONF={conf})' if conf else '')
    return 'glibc malloc'


# ------------------------------------------------------------------ timing
def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(runners, repeats, warmup, device):
    """Seconds per call of every runner, interleaved, order alternating."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    _sync(device)
    times = {name: [] for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            _sync(device)
            start = time.perf_counter()
            runners[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _dyt_flops(backbone):
    from mmdyt.models.dyt import model_flops
    per_sample = backbone.dynamic_flops()
    num_tokens = next(iter(backbone.dyt_masks[0].values())).shape[1]
    spec = backbone.dyt_flops_spec(num_tokens)
    return float(per_sample.mean()), float(model_flops(spec.dense()))


def _rates(backbone):
    per_sample = backbone.layer_activation_rates().mean(dim=1)
    return (float(per_sample.mean()), float(per_sample.min()),
            float(per_sample.max()))


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda, but CUDA is not available')
    amp_dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16

    cfg = load_config(args.config, args.cfg_options)
    models = {'dyt': build_dyt_backbone(cfg, args.checkpoint)}
    main_dyt = models['dyt']
    img_size = args.img_size or cfg.model.backbone.get('img_size', 224)
    if isinstance(img_size, (tuple, list)):
        img_size = img_size[0]
    dense = build_dense_twin(cfg, main_dyt)

    extra_names = []
    for path in args.also:
        name = osp.splitext(osp.basename(path))[0]
        if name in models or name == 'dense':
            name = f'{name}_{len(extra_names)}'
        extra = build_dyt_backbone(load_config(path), None)
        host = {k: v for k, v in main_dyt.state_dict().items()
                if not k.startswith('dyt_layers.')}
        extra.load_state_dict(host, strict=False)
        models[name] = extra
        extra_names.append(name)

    for m in [dense, *models.values()]:
        m.to(device)
    calib = {}
    if args.rate is not None:
        calib_imgs = synthetic_images(args.calib_batch, img_size,
                                      args.seed + 1, device)
        reached = calibrate_rate(main_dyt, calib_imgs, args.rate)
        calib['dyt'] = sum(reached) / len(reached)
    for name in extra_names:
        if not copy_dispatchers(main_dyt, models[name]) \
                and args.rate is not None:
            reached = calibrate_rate(models[name], calib_imgs, args.rate)
            calib[name] = sum(reached) / len(reached)

    images = synthetic_images(args.batch_size, img_size, args.seed, device)

    def runner(model):

        def run():
            with torch.inference_mode(), (torch.autocast(
                    device.type, dtype=amp_dtype)
                                          if args.amp else nullcontext()):
                return model(images)

        return run

    for m in models.values():
        m._dyt_mode = 'gathered'  # plain inference mode, stated explicitly
    runners = {'dense': runner(dense)}
    runners.update({name: runner(m) for name, m in models.items()})
    times = time_interleaved(runners, args.repeats, args.warmup, device)

    B = args.batch_size
    dense_med = statistics.median(times['dense'])
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        device=args.device,
        device_name=(torch.cuda.get_device_name(device)
                     if device.type == 'cuda' else 'cpu'),
        amp=(str(amp_dtype).replace('torch.', '') if args.amp else None),
        batch_size=B,
        img_size=img_size,
        threads=torch.get_num_threads(),
        allocator=allocator_name(),
        repeats=args.repeats,
        warmup=args.warmup,
        timed='backbone forward (no head)',
        rate_target=args.rate,
        img_s_dense=B / dense_med,
        times_dense=times['dense'],
        models={},
    )
    for name, model in models.items():
        med = statistics.median(times[name])
        ratios = [d / t for d, t in zip(times['dense'], times[name])]
        rate, rate_min, rate_max = _rates(model)
        flops, dense_flops = _dyt_flops(model)
        bound = dense_flops / flops
        speedup = statistics.median(ratios)
        result['models'][name] = dict(
            img_s=B / med,
            speedup=speedup,
            speedup_of_medians=dense_med / med,
            act_rate=rate,
            act_rate_min=rate_min,
            act_rate_max=rate_max,
            calib_rate=calib.get(name),
            gflops=flops / 1e9,
            gflops_dense=dense_flops / 1e9,
            flops_bound=bound,
            fraction_of_bound=speedup / bound,
            times=times[name],
            num_experts=model.dyt_cfg['num_experts'],
            variant=model.dyt_cfg['variant'],
        )
    main_res = result['models']['dyt']
    result['img_s_dyt'] = main_res['img_s']
    for key in ('speedup', 'act_rate', 'flops_bound', 'fraction_of_bound',
                'gflops', 'gflops_dense'):
        result[key] = main_res[key]
    print_report(result)
    if args.out:
        import json
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return result


def print_report(r):
    print(f'\nDyT benchmark: {r["config"]}'
          f'{" + " + r["checkpoint"] if r["checkpoint"] else ""}')
    print(f'  device {r["device_name"]}, amp {r["amp"] or "off (fp32)"}, '
          f'batch {r["batch_size"]}, {r["img_size"]}px, '
          f'{r["threads"]} threads, allocator: {r["allocator"]}')
    print(f'  timed: {r["timed"]}, DyT in gathered mode; {r["warmup"]} '
          f'warm-up + {r["repeats"]} interleaved repetitions, medians')
    if r['rate_target'] is not None:
        print(f'  dispatchers calibrated to rate {r["rate_target"]}')
    labels = {name: f'{name} ({m["variant"]}, N={m["num_experts"]})'
              for name, m in r['models'].items()}
    w = max([len('dense host ViT')] + [len(v) for v in labels.values()]) + 2
    print(f'  {"model":<{w}}{"img/s":>9}{"speedup":>9}{"act rate":>10}'
          f'{"(min-max)":>13}{"GFLOPs":>8}{"bound":>7}{"of bound":>9}')
    print(f'  {"dense host ViT":<{w}}{r["img_s_dense"]:>9.2f}{1.0:>9.3f}'
          f'{1.0:>10.3f}{"":>13}{r["gflops_dense"]:>8.2f}')
    for name, m in r['models'].items():
        print(f'  {labels[name]:<{w}}{m["img_s"]:>9.2f}{m["speedup"]:>9.3f}'
              f'{m["act_rate"]:>10.3f}'
              f'{m["act_rate_min"]:>7.2f}-{m["act_rate_max"]:<5.2f}'
              f'{m["gflops"]:>8.2f}{m["flops_bound"]:>7.3f}'
              f'{m["fraction_of_bound"]:>9.3f}')
    print('  speedup = median of per-repetition dense/DyT time ratios; '
          'bound = dense FLOPs / DyT FLOPs (actual masks, adapters and '
          'dispatchers included)')


if __name__ == '__main__':
    main()
