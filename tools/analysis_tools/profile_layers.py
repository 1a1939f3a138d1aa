# Copyright (c) mmdyt contributors. All rights reserved.
"""Where the time of each DyT layer goes (gathered inference path, CPU).

Times every part of each layer on its real input (attention, dispatcher
scores, adapter, index work, MLP on the active tokens, add back) next to the
whole DyT layer and the dense layer (attention + MLP on all tokens), and
prints per layer the dispatch overhead (scores + index + add back) as a share
of the layer and the MLP efficiency (time per token on all tokens / on the
active ones)::

    python tools/analysis_tools/profile_layers.py CONFIG [--checkpoint CKPT]
        [--batch-size 1] [--rate 0.5] [--threads N] [--repeats 30]
        [--layers 0 5 11] [--out profile.json] [--cfg-options ...]

``--rate`` calibrates the dispatchers as ``benchmark.py --rate`` does. The
logic lives in :mod:`mmdyt.analysis.layer_profile`; timings are medians of
interleaved repetitions (ratios between parts of one run mean more than the
times themselves).
"""
import argparse
import json

import torch

import mmdyt  # noqa: F401  (registers the mmdyt scope)
from mmdyt.analysis import allocator_name, example_batch
from mmdyt.analysis.layer_profile import (format_profile, mlp_cost_fit,
                                          profile_layers, total_profile)
from mmdyt.apis import calibrate, init_dyt_model, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Profile the gathered path of every DyT layer')
    parser.add_argument('config', help='config with a DyT model')
    parser.add_argument('--checkpoint', help='checkpoint to load (optional)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--rate',
        type=float,
        default=None,
        help='calibrate the dispatchers to this activation rate (0..1)')
    parser.add_argument('--calib-batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--layers',
        type=int,
        nargs='+',
        default=None,
        help='layer indices to profile (default: all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='also write the results to this JSON')
    parser.add_argument('--cfg-options', nargs='+', default=None)
    args = parser.parse_args(argv)
    if args.rate is not None and not 0.0 <= args.rate <= 1.0:
        parser.error(f'--rate must be in [0, 1], got {args.rate}')
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error('--batch-size and --repeats must be >= 1, --warmup >= 0')
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = init_dyt_model(
        load_config(args.config, args.cfg_options), args.checkpoint)
    backbone = model.backbone
    if args.rate is not None:  # on a separate batch, as benchmark.py does
        calib, _ = example_batch(model, 'backbone', args.calib_batch,
                                 args.seed + 1)

        def run_calibration():
            with torch.inference_mode():
                backbone(calib)

        calibrate(backbone, run_calibration, args.rate, rule='per_layer')
    inputs, _ = example_batch(model, 'backbone', args.batch_size, args.seed)
    profiles = profile_layers(backbone, inputs, args.layers, args.repeats,
                              args.warmup)
    total = total_profile(profiles)
    print(f'DyT layer profile: {args.config}\n  batch {args.batch_size}, '
          f'{torch.get_num_threads()} threads, allocator: {allocator_name()},'
          f' {args.warmup} warm-up + {args.repeats} interleaved repetitions, '
          'medians in ms')
    print(format_profile(profiles))
    print(f'dispatch overhead (scores + index + add back): '
          f'{100 * total.overhead_share:.2f}% of the DyT layers; MLP '
          f'efficiency on the active tokens {total.mlp_efficiency:.3f}; '
          f'DyT / dense layer time {total.dyt_to_dense:.3f}')
    fit = None
    if len({p.active for p in profiles}) > 1:
        fit = mlp_cost_fit(profiles)
        print(f'MLP on the active tokens, fit over the layers: {fit[0]:.3f} '
              f'ms fixed + {fit[1]:.4f} ms per token (the fixed part does '
              'not shrink with the tokens: mostly the weights read from '
              'memory)')
    result = dict(
        config=args.config,
        batch_size=args.batch_size,
        threads=torch.get_num_threads(),
        allocator=allocator_name(),
        repeats=args.repeats,
        layers=[p.summary() for p in profiles],
        total=total.summary(),
        mlp_fit_ms=None if fit is None else dict(
            fixed=fit[0], per_token=fit[1]))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
