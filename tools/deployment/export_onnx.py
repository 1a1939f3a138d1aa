# Copyright (c) mmdyt contributors. All rights reserved.
"""Export a DyT model to ONNX with its token skipping in the graph.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--mode gather|topk] [--rate R] [--shape H W] [--frames T] \
        [--opset N] [--exporter torchscript|dynamo] [--verify]
        [--cfg-options k=v ...]

CHECKPOINT is a full or delta checkpoint, or ``none`` (the config's initial
weights). The graph takes the normalised input tensor (``input``, dynamic
batch) and returns ``output`` (logits); see docs/en/user_guides/deploy.md.
"""
import argparse
import json
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint', help='full or delta checkpoint, or "none"')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument(
        '--mode',
        default='gather',
        help='gather (data-dependent counts, default) or '
        'topk (k = ceil(R * N) tokens per sample, static '
        'shapes)')
    parser.add_argument(
        '--rate',
        type=float,
        default=None,
        help='R of --mode topk (default: the checkpoint\'s '
        'rate)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size (default: the backbone img_size)')
    parser.add_argument(
        '--frames', type=int, default=None, help='frames per clip (video)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--exporter',
        default='torchscript',
        help='torchscript (default, seconds) or dynamo '
        '(torch.export; slower)')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='run the file in ONNX Runtime and print the '
        'largest difference to PyTorch')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='key=value config overrides')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmdyt.deploy import DeployError, export_checkpoint
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    try:
        report = export_checkpoint(args.config, checkpoint, args.out,
                                   args.mode, args.rate, args.shape,
                                   args.frames, args.opset, args.verify,
                                   args.cfg_options, args.exporter)
    except DeployError as e:
        print(f'error: {e}', file=sys.stderr)
        raise SystemExit(2)
    print(f'exported {report["task"]} model to {args.out} '
          f'(--mode {report["mode"]}' +
          (f', R={report["rate"]:.4f} ({report.get("rate_source", "given")})'
           if report['rate'] is not None else '') + ')')
    if report.get('tome'):
        tome = report['tome']
        print(f'  token merging (model.backbone.tome r={tome["r"]}, '
              f'prop_attn={tome["prop_attn"]}) in the graph: tokens ' +
              ' -> '.join(str(n) for n in tome['tokens']))
    if 'verify' in report:
        for run in report['verify']['runs']:
            print(f'  batch {run["batch"]} seed {run["seed"]}: max abs diff '
                  f'{run["max_abs_diff"]:.3g}')
        print(f'max abs diff ORT vs PyTorch: '
              f'{report["verify"]["max_abs_diff"]:.3g}')
    print(json.dumps(report))
    return report


if __name__ == '__main__':
    main()
