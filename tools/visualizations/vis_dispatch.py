# Copyright (c) mmdyt contributors. All rights reserved.
"""Show which patches every DyT dispatcher activates for one image.

::

    python tools/visualizations/vis_dispatch.py IMAGE CONFIG [CHECKPOINT]
        [--out dispatch.png] [--ncols 6] [--alpha 0.7] [--rate R]

The image goes through the config's test pipeline and data preprocessor,
then through the DyT backbone in inference (``'gathered'``) mode. The PNG
shows the input, then one panel per layer (and dispatch site) with the
inactive patches masked in grey and the layer's activation rate in the
title, as in the DyT paper's figures. Without a checkpoint the weights are random;
``--rate`` then calibrates the dispatchers (as ``benchmark.py --rate``).
``main(argv)`` returns the output path, the PNG size and the masks.
"""
import argparse
import copy
import importlib.util
import math
import os
import os.path as osp

import numpy as np
import torch

import mmdyt  # noqa: F401


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Visualise the tokens DyT activates in every layer')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config with a DyT backbone')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint (optional: random weights)')
    parser.add_argument('--out', default='dispatch.png', help='PNG to write')
    parser.add_argument('--ncols', type=int, default=6,
                        help='panels per row (default 6)')
    parser.add_argument('--panel-size', type=float, default=2.0,
                        help='panel side in inches at 100 dpi (default 2)')
    parser.add_argument(
        '--alpha', type=float, default=0.7,
        help='opacity of the light grey mask over inactive patches')
    parser.add_argument('--rate', type=float, default=None,
                        help='calibrate random dispatchers to this rate')
    parser.add_argument('--cfg-options', nargs='+', default=None,
                        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    if args.ncols < 1:
        parser.error('--ncols must be >= 1')
    return args


def _benchmark_module():
    path = osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'analysis_tools',
        'benchmark.py')
    spec = importlib.util.spec_from_file_location('mmdyt_tools_benchmark',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_input(img_path, cfg, model):
    """``(inputs (1,3,H,W) for the model, display image (H,W,3) uint8 RGB)``
    through the config's test pipeline and the model's preprocessor."""
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate

    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    pipeline_cfg = copy.deepcopy(loader['dataset']['pipeline'])
    pipeline = Compose(pipeline_cfg)
    data = pipeline(dict(img_path=img_path))
    batch = pseudo_collate([data])
    inputs = model.data_preprocessor(batch, False)['inputs']
    shown = data['inputs'].permute(1, 2, 0).numpy()  # (H, W, C), as loaded
    if shown.shape[-1] == 1:
        shown = np.repeat(shown, 3, axis=-1)
    elif getattr(model.data_preprocessor, 'to_rgb', False):
        shown = shown[..., ::-1]  # loaded BGR (cv2), show RGB
    return inputs, np.ascontiguousarray(shown).astype(np.uint8)


def dispatch_panels(image, masks, grid, prefix, alpha,
                    color=(225, 225, 225)):
    """Per mask ``(N,)``: the image with inactive patches masked (blended
    towards a light grey, visible on dark and bright images alike)."""
    H, W = image.shape[:2]
    gh, gw = grid
    panels = []
    for mask in masks:
        active = mask[prefix:].reshape(gh, gw).float().numpy()
        up = np.kron(active, np.ones((math.ceil(H / gh), math.ceil(W / gw))))
        inactive = (1.0 - up[:H, :W, None]) * alpha
        blend = image * (1 - inactive) + np.asarray(color) * inactive
        panels.append(blend.round().clip(0, 255).astype(np.uint8))
    return panels


def main(argv=None):
    args = parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    bm = _benchmark_module()
    from mmdyt.apis import init_dyt_model, load_config
    cfg = load_config(args.config, args.cfg_options)
    model = init_dyt_model(cfg, args.checkpoint)
    backbone = model.backbone
    inputs, image = load_input(args.img, cfg, model)
    with torch.no_grad():
        if args.rate is not None:
            bm.calibrate_rate(backbone, inputs, args.rate)
        with backbone.dyt_mode('gathered', keep_masks=True):
            feats = backbone(inputs)
            scores = model.head(feats) if hasattr(model, 'head') else None
    masks, titles = [], []
    for i, per_site in enumerate(backbone.dyt_masks):
        for site, m in per_site.items():
            m = m[0].bool().cpu()
            rate = m[backbone.num_prefix_tokens:].float().mean()
            masks.append(m)
            label = f'L{i}' if len(per_site) == 1 else f'L{i} {site}'
            titles.append(f'{label}: {100 * float(rate):.0f}%')
    if inputs.shape[-2:] != tuple(image.shape[:2]):
        import torch.nn.functional as F
        image = F.interpolate(
            torch.from_numpy(image).permute(2, 0, 1)[None].float(),
            size=inputs.shape[-2:]).round().clamp(0, 255)[0].permute(
                1, 2, 0).numpy().astype(np.uint8)
    grid = (inputs.shape[-2] // backbone.patch_embed.projection.stride[0],
            inputs.shape[-1] // backbone.patch_embed.projection.stride[1])
    panels = dispatch_panels(image, masks, grid, backbone.num_prefix_tokens,
                             args.alpha)

    n = len(panels) + 1
    ncols = min(args.ncols, n)
    nrows = math.ceil(n / ncols)
    size = args.panel_size
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * size * 1.12), dpi=100,
        squeeze=False)
    title = 'input'
    if scores is not None:
        title += f' (pred {int(scores[0].argmax())})'
    for ax, img, t in zip(axes.flat, [image] + panels, [title] + titles):
        ax.imshow(img, interpolation='nearest')
        ax.set_title(t, fontsize=9)
    for ax in axes.flat:
        ax.axis('off')
    mean_rate = torch.stack(masks)[:, backbone.num_prefix_tokens:].float()
    fig.suptitle(f'DyT: inactive patches greyed per layer, mean rate '
                 f'{100 * float(mean_rate.mean()):.0f}%', fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88,
                        wspace=0.05, hspace=0.25)
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    width, height = fig.canvas.get_width_height()
    plt.close(fig)
    print(f'vis_dispatch: wrote {args.out} ({width}x{height} px, '
          f'{len(masks)} dispatchers)')
    return dict(out=args.out, size=(width, height), masks=masks,
                titles=titles)


if __name__ == '__main__':
    main()
