# Copyright (c) mmdyt contributors. All rights reserved.
"""Inference speed of a DyT model against its dense host, in one process.

Builds the DyT model of a config of any host (mmpretrain, mmseg, mmaction2)
and its dense twin with the same weights (the host backbone, or at
``--level model`` the host algorithm with the host backbone), then times both
on the same inputs, interleaved (the order alternates every repetition), and
reports medians::

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT]
        [--level backbone|model] [--batch-size 32] [--device cpu|cuda]
        [--amp] [--rate 0.5] [--repeats 20] [--warmup 3] [--threads N]
        [--also CONFIG2 ...] [--out results.json]
        [--backend pytorch|onnxruntime] [--ort-threads 2]

``--level backbone`` (default) times the backbone forward alone (DyT in its
``'gathered'`` inference mode) on a batch of synthetic inputs of the
backbone's input shape; ``--level model`` times the algorithm's ``predict``
(heads, necks, every view of a video, every crop of a sliding-window
segmentation) on its synthetic test samples. The logic lives in
:mod:`mmdyt.analysis`.

Printed and returned (``main(argv)`` returns a dict): img/s of the dense and
the DyT model, the speedup (median of the per-repetition dense/DyT time
ratios), the measured activation rate (mean, min and max per sample), the
FLOPs of both models (analytic, from the actual masks, see
``mmdyt.models.dyt.flops``), the FLOPs bound ``dense / DyT`` and the speedup
as a fraction of that bound.

``--rate R`` calibrates every dispatcher on a separate calibration batch
(layer by layer, each on its actual input): its logit offset is set so that a
fraction ``R`` of the tokens is active, the weights are kept, so the active tokens and
their number still depend on each sample. Without ``--rate`` and without a
checkpoint, fresh dispatchers activate about half of the tokens by chance
(as in the official speed test).

``--also`` times further DyT configs (e.g. the MoE adapter) in the same loop,
with the same host weights and, when the dispatch variant matches, the same
dispatchers as the main one (so the same tokens are active).

``--tome R [R ...]`` times the same DyT model with token merging
(``backbone.tome=dict(r=R)``, see :mod:`mmdyt.models.dyt.merge`) in the same
loop: same host weights, same (calibrated) dispatchers, merging applied at
test time as in the paper's Table 5.

Where the host's own attention is slower than the fused kernel DyT runs
(mmseg's layers call ``nn.MultiheadAttention`` with ``need_weights=True``
on sequence-first views), the backbone offers ``fuse_host_attention`` and a
second dense reference, ``dense_fused`` (the host running the DyT layers'
attention code, like for like), is timed in the same loop; the report gives
the speedup against both.

Inputs are synthetic (smooth random structure plus noise, different per
sample, see :func:`mmdyt.utils.synthetic.synthetic_inputs`). Timings on shared or small machines are noisy; only the ratios
of interleaved runs in one process mean much. The allocator (glibc malloc or
a preloaded jemalloc/tcmalloc) and the thread count are reported. ``--amp``
runs under ``torch.autocast`` (float16 on CUDA, bfloat16 on CPU).

``--backend onnxruntime`` (``--level backbone``, CPU): ``dense`` and ``dyt``
are the dense and the DyT backbone exported to ONNX the same way
(:mod:`mmdyt.deploy`) and run in ONNX Runtime with ``--ort-threads``
intra-op threads; both PyTorch eager models run in the same interleaved loop
(``pytorch`` in the output: their speeds, and DyT ONNX vs DyT eager).
"""
import argparse
import os.path as osp
import statistics

import torch

import mmdyt  # noqa: F401  (registers the mmdyt scope)
from mmdyt.analysis import (LEVELS, allocator_name, build_target,
                            copy_dispatchers, host_state, median_speedup,
                            time_interleaved)
from mmdyt.apis import calibrate, init_dyt_model, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time a DyT model against its dense host (same weights, '
        'same process, interleaved)')
    parser.add_argument('config', help='config with a DyT model')
    parser.add_argument('--checkpoint', help='checkpoint to load (optional)')
    parser.add_argument(
        '--level',
        default='backbone',
        choices=LEVELS,
        help='time the backbone alone (default) or the whole model\'s '
        'predict (heads, views, sliding windows)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--amp',
        action='store_true',
        help='autocast: float16 on cuda, bfloat16 on cpu')
    parser.add_argument(
        '--rate',
        type=float,
        default=None,
        help='calibrate the dispatchers to this activation rate (0..1)')
    parser.add_argument(
        '--calib-batch',
        type=int,
        default=8,
        help='calibration batch size for --rate (default 8)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=20,
        help='timed forward passes per model (default 20)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=3,
        help='untimed forward passes per model first (default 3)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (default: torch default)')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs='+',
        default=None,
        help='input size H [W] (default: the configured size)')
    parser.add_argument(
        '--also',
        nargs='+',
        default=[],
        help='further DyT configs to time in the same loop (e.g. MoE)')
    parser.add_argument(
        '--tome',
        type=int,
        nargs='+',
        default=[],
        help='also time the model with token merging, r tokens per layer '
        '(backbone.tome.r), same dispatchers')
    parser.add_argument(
        '--backend',
        default='pytorch',
        choices=['pytorch', 'onnxruntime'],
        help='onnxruntime: the DyT and the dense backbone exported to ONNX '
        '(mmdyt.deploy, gather mode) and timed in ONNX Runtime, with both '
        'PyTorch eager models in the same loop')
    parser.add_argument(
        '--ort-threads',
        type=int,
        default=2,
        help='ONNX Runtime intra-op threads (and PyTorch\'s '
        'with --backend onnxruntime; default 2)')
    parser.add_argument(
        '--onnx-dir', default=None, help='keep the exported .onnx files here')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='also write the results to this JSON')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    if args.rate is not None and not 0.0 <= args.rate <= 1.0:
        parser.error(f'--rate must be in [0, 1], got {args.rate}')
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error('--batch-size and --repeats must be >= 1, --warmup >= 0')
    if args.tome and args.backend != 'pytorch':
        parser.error('--tome times PyTorch models only (--backend pytorch)')
    if args.img_size is not None and len(args.img_size) not in (1, 2):
        parser.error('--img-size takes H or H W')
    if args.backend == 'onnxruntime' and (args.level != 'backbone'
                                          or args.device != 'cpu' or args.amp
                                          or args.also):
        parser.error('--backend onnxruntime supports --level backbone, '
                     '--device cpu, fp32 (no --amp) and no --also')
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda, but CUDA is not available')
    amp_dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    shape = None if args.img_size is None else \
        (args.img_size[0], args.img_size[-1])

    def target(name, model, dense=None):
        return build_target(name, model.to(device), args.level,
                            args.batch_size, args.seed, args.calib_batch,
                            shape, amp_dtype if args.amp else None, dense)

    main_target = target(
        'dyt',
        init_dyt_model(
            load_config(args.config, args.cfg_options), args.checkpoint))
    targets = {'dyt': main_target}
    for path in args.also:
        name = osp.splitext(osp.basename(path))[0]
        if name in targets or name == 'dense':
            name = f'{name}_{len(targets)}'
        model = init_dyt_model(load_config(path))
        model.backbone.load_state_dict(
            host_state(main_target.backbone), strict=False)
        targets[name] = target(name, model)
    for r in args.tome:
        name = f'dyt+tome_r{r}'
        options = list(args.cfg_options or []) + [f'model.backbone.tome.r={r}']
        model = init_dyt_model(
            load_config(args.config, options), args.checkpoint)
        model.backbone.load_state_dict(
            host_state(main_target.backbone), strict=False)
        targets[name] = target(name, model)

    calib = {}
    for name, t in targets.items():
        same = name != 'dyt' and copy_dispatchers(main_target.backbone,
                                                  t.backbone)
        if args.rate is not None and not same:
            reached = calibrate(
                t.backbone, t.run_calibration, args.rate,
                rule='per_layer').layer_rates
            calib[name] = sum(reached) / len(reached)

    runners = {'dense': main_target.run_dense}
    fuse = getattr(main_target.backbone, 'fuse_host_attention', None)
    if fuse is not None:  # the like-for-like dense reference
        twin = main_target.backbone.build_dense_twin() \
            if args.level == 'backbone' else main_target.model.build_dense_twin()
        runners['dense_fused'] = target('dyt', main_target.model,
                                        fuse(twin)).run_dense
    runners.update({name: t.run for name, t in targets.items()})
    if args.backend == 'onnxruntime':  # dense / dyt: the ONNX models
        from mmdyt.deploy.benchmark import benchmark_onnxruntime
        ort = benchmark_onnxruntime(main_target, args.batch_size, args.seed,
                                    shape, args.repeats, args.warmup,
                                    args.ort_threads, args.onnx_dir)
        times = ort['times']
    else:
        times = time_interleaved(runners, args.repeats, args.warmup, device)

    B = args.batch_size
    dense_med = statistics.median(times['dense'])
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        level=args.level,
        device=args.device,
        device_name=(torch.cuda.get_device_name(device)
                     if device.type == 'cuda' else 'cpu'),
        amp=(str(amp_dtype).replace('torch.', '') if args.amp else None),
        batch_size=B,
        input_shape=list(main_target.input_shape),
        threads=torch.get_num_threads(),
        allocator=allocator_name(),
        repeats=args.repeats,
        warmup=args.warmup,
        timed=('backbone forward (no head)' if args.level == 'backbone' else
               'model predict (heads, views, sliding windows)'),
        rate_target=args.rate,
        img_s_dense=B / dense_med,
        times_dense=times['dense'],
        models={},
    )
    if 'dense_fused' in times:
        result['img_s_dense_fused'] = B / statistics.median(
            times['dense_fused'])
        result['times_dense_fused'] = times['dense_fused']
    for name, t in targets.items():
        med = statistics.median(times[name])
        measured = t.measure().summary()
        bound = measured['gflops_dense'] / measured['gflops']
        speedup = median_speedup(times['dense'], times[name])
        result['models'][name] = dict(
            img_s=B / med,
            speedup=speedup,
            speedup_of_medians=dense_med / med,
            calib_rate=calib.get(name),
            flops_bound=bound,
            fraction_of_bound=speedup / bound,
            times=times[name],
            num_experts=t.backbone.dyt_cfg['num_experts'],
            variant=t.backbone.dyt_cfg['variant'],
            tome_r=(t.backbone.tome_cfg or {}).get('r'),
            **measured)
        if 'dense_fused' in times:  # against the like-for-like dense
            fused = median_speedup(times['dense_fused'], times[name])
            result['models'][name].update(
                speedup_vs_fused=fused,
                fraction_of_bound_vs_fused=fused / bound)
    if args.backend == 'onnxruntime':
        from mmdyt.deploy.benchmark import onnxruntime_fields
        result.update(onnxruntime_fields(ort, B, args.ort_threads))
    main_res = result['models']['dyt']
    result['img_s_dyt'] = main_res['img_s']
    for key in ('speedup', 'act_rate', 'flops_bound', 'fraction_of_bound',
                'gflops', 'gflops_dense', 'speedup_vs_fused',
                'fraction_of_bound_vs_fused'):
        if key in main_res:
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
          f'batch {r["batch_size"]}, input {r["input_shape"]}, '
          f'{r["threads"]} threads, allocator: {r["allocator"]}')
    print(f'  timed: {r["timed"]}, DyT in gathered mode; {r["warmup"]} '
          f'warm-up + {r["repeats"]} interleaved repetitions, medians')
    if r['rate_target'] is not None:
        print(f'  dispatchers calibrated to rate {r["rate_target"]}')
    labels = {
        name: f'{name} ({m["variant"]}, N={m["num_experts"]})'
        for name, m in r['models'].items()
    }
    fused = 'img_s_dense_fused' in r
    w = max([len('dense host')] + [len(v) for v in labels.values()]) + 2
    print(f'  {"model":<{w}}{"img/s":>9}{"speedup":>9}{"act rate":>10}'
          f'{"(min-max)":>13}{"GFLOPs":>8}{"bound":>7}{"of bound":>9}')
    print(f'  {"dense host":<{w}}{r["img_s_dense"]:>9.2f}{1.0:>9.3f}'
          f'{1.0:>10.3f}{"":>13}{r["gflops_dense"]:>8.2f}')
    if fused:
        print(f'  {"dense, fused attn":<{w}}{r["img_s_dense_fused"]:>9.2f}'
              f'{"":>9}{1.0:>10.3f}{"":>13}{r["gflops_dense"]:>8.2f}')
    for name, m in r['models'].items():
        print(f'  {labels[name]:<{w}}{m["img_s"]:>9.2f}{m["speedup"]:>9.3f}'
              f'{m["act_rate"]:>10.3f}'
              f'{m["act_rate_min"]:>7.2f}-{m["act_rate_max"]:<5.2f}'
              f'{m["gflops"]:>8.2f}{m["flops_bound"]:>7.3f}'
              f'{m["fraction_of_bound"]:>9.3f}')
    if fused:
        print('  against the dense host with the same fused attention (like '
              'for like):')
        for name, m in r['models'].items():
            print(f'  {labels[name]:<{w}}{"":>9}'
                  f'{m["speedup_vs_fused"]:>9.3f}{"":>38}'
                  f'{m["fraction_of_bound_vs_fused"]:>9.3f}')
    print('  speedup = median of per-repetition dense/DyT time ratios; '
          'bound = dense FLOPs / DyT FLOPs (actual masks, adapters and '
          'dispatchers included; token merging: merged tokens counted)')
    if r.get('backend') == 'onnxruntime':
        from mmdyt.deploy.benchmark import print_onnxruntime
        print_onnxruntime(r)


if __name__ == '__main__':
    main()
