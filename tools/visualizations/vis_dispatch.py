# Copyright (c) mmdyt contributors. All rights reserved.
"""Show which patches every DyT dispatcher activates for one image or clip.

::

    python tools/visualizations/vis_dispatch.py IMAGE CONFIG [CHECKPOINT]
        [--out dispatch.png] [--ncols 6] [--alpha 0.7] [--rate R]
    python tools/visualizations/vis_dispatch.py VIDEO|FRAME_DIR VIDEO_CONFIG ...

For a video config (an mmdyt video recognizer) the clip (its first test
view) is drawn as one row per frame: the frame, then its active patches in
every layer (per frame for the per-frame recipe; for VideoMAE the tokens of
the tubelet that holds the frame).

The image goes through the config's test pipeline and data preprocessor,
then through the DyT backbone in inference (``'gathered'``) mode. The PNG
shows the input, then one panel per layer (and dispatch site) with the
inactive patches masked in grey and the layer's activation rate in the
title, as in the DyT paper's figures. Without a checkpoint the weights are random;
``--rate`` then calibrates the dispatchers (as ``benchmark.py --rate``).
``main(argv)`` returns the output path, the PNG size and the masks.
"""
import argparse

import matplotlib
import torch

import mmdyt  # noqa: F401
from mmdyt.apis import calibrate, init_dyt_model, load_config
from mmdyt.visualization import (clip_dispatch_masks, dispatch_masks,
                                 dispatch_panels, is_clip_model, load_clip,
                                 load_input, predicted_label, resize_display,
                                 save_panel_grid)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Visualise the tokens DyT activates in every layer')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config with a DyT backbone')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='checkpoint (optional: random weights)')
    parser.add_argument('--out', default='dispatch.png', help='PNG to write')
    parser.add_argument(
        '--ncols', type=int, default=6, help='panels per row (default 6)')
    parser.add_argument(
        '--panel-size',
        type=float,
        default=2.0,
        help='panel side in inches at 100 dpi (default 2)')
    parser.add_argument(
        '--alpha',
        type=float,
        default=0.7,
        help='opacity of the light grey mask over inactive patches')
    parser.add_argument(
        '--rate',
        type=float,
        default=None,
        help='calibrate random dispatchers to this rate')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    if args.ncols < 1:
        parser.error('--ncols must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    matplotlib.use('Agg')  # files only
    cfg = load_config(args.config, args.cfg_options)
    model = init_dyt_model(cfg, args.checkpoint)
    if is_clip_model(model):
        return draw_clip(args, cfg, model)
    backbone = model.backbone
    inputs, image = load_input(args.img, cfg, model)
    if args.rate is not None:
        calibrate(
            backbone, lambda: backbone(inputs), args.rate, rule='per_layer')
    masks, titles, feats = dispatch_masks(backbone, inputs)
    label = predicted_label(model, feats)
    image = resize_display(image, inputs.shape[-2:])
    panels = dispatch_panels(image, masks, args.alpha)
    title = 'input' + (f' (pred {label})' if label is not None else '')
    mean_rate = torch.cat([m.flatten() for m in masks]).float().mean()
    size = save_panel_grid(
        args.out, [image] + panels, [title] + titles,
        f'DyT: inactive patches greyed per layer, mean rate '
        f'{100 * float(mean_rate):.0f}%', args.ncols, args.panel_size)
    print(f'vis_dispatch: wrote {args.out} ({size[0]}x{size[1]} px, '
          f'{len(masks)} dispatchers)')
    return dict(out=args.out, size=size, masks=masks, titles=titles)


def draw_clip(args, cfg, model):
    """One row per frame: the frame, then one panel per dispatcher."""
    clip, frames = load_clip(args.img, cfg, model)
    if args.rate is not None:
        calibrate(
            model.backbone,
            lambda: clip_dispatch_masks(model, clip),
            args.rate,
            rule='per_layer')
    masks, labels = clip_dispatch_masks(model, clip)
    images, titles = [], []
    for t, (frame, per_frame) in enumerate(zip(frames, masks)):
        frame = resize_display(frame, clip.shape[-2:])
        images += [frame] + dispatch_panels(frame, per_frame, args.alpha)
        titles += [f'frame {t}'] + [
            f'{label}: {100 * float(m.float().mean()):.0f}%'
            for label, m in zip(labels, per_frame)
        ]
    mean_rate = torch.stack([m.float().mean() for per in masks
                             for m in per]).mean()
    size = save_panel_grid(
        args.out, images, titles,
        f'DyT: inactive patches greyed, one row per frame, mean rate '
        f'{100 * float(mean_rate):.0f}%', 1 + len(labels), args.panel_size)
    print(f'vis_dispatch: wrote {args.out} ({size[0]}x{size[1]} px, '
          f'{len(frames)} frames x {len(labels)} dispatchers)')
    return dict(out=args.out, size=size, masks=masks, titles=titles)


if __name__ == '__main__':
    main()
