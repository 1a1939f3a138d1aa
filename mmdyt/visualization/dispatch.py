# Copyright (c) mmdyt contributors. All rights reserved.
"""What ``tools/visualizations/vis_dispatch.py`` draws: the tokens every
dispatcher activates, for a DyT model of any host.

:func:`load_input` runs a file through the config's test pipeline and the
model's data preprocessor; :func:`dispatch_masks` runs the DyT backbone and
returns, per dispatcher, its mask on the token grid of that dispatcher
(``backbone.dyt_token_grids()``) with a title; :func:`dispatch_panels`
greys the inactive patches of an image for each 2-D mask.
"""
import copy
import math
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate


def load_input(path: str, cfg, model) -> Tuple[torch.Tensor, np.ndarray]:
    """``(inputs (1, ...) for the model, display image (H, W, 3) uint8 RGB)``
    through the config's test (else val) pipeline and the model's
    preprocessor."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader:
        raise KeyError('the config has no test_dataloader or val_dataloader '
                       '(its dataset.pipeline loads the input)')
    # an image without labels: drop the annotation loading of the test
    # pipeline (mmseg's test pipelines load the seg map), as mmseg's own
    # inference API does
    pipeline = Compose([
        t for t in copy.deepcopy(loader['dataset']['pipeline'])
        if not str(t.get('type', '')).endswith('LoadAnnotations')
    ])
    data = pipeline(dict(img_path=path))
    inputs = model.data_preprocessor(pseudo_collate([data]), False)['inputs']
    shown = data['inputs'].permute(1, 2, 0).numpy()  # (H, W, C), as loaded
    if shown.shape[-1] == 1:
        shown = np.repeat(shown, 3, axis=-1)
    elif getattr(model.data_preprocessor, 'to_rgb', False) or getattr(
            model.data_preprocessor, 'bgr_to_rgb', False):
        shown = shown[..., ::-1]  # loaded BGR (cv2), show RGB
    return inputs, np.ascontiguousarray(shown).astype(np.uint8)


def dispatch_masks(backbone, inputs: torch.Tensor, row: int = 0):
    """Run ``backbone`` (gathered) on ``inputs``.

    Returns:
        tuple: Per dispatcher, the bool mask of row ``row`` on its token
        grid; per dispatcher a title ``'L{i}[ site]: r%'``; the backbone's
        output.
    """
    with torch.no_grad(), backbone.dyt_mode('gathered', keep_masks=True):
        feats = backbone(inputs)
    grids = backbone.dyt_token_grids()
    masks, titles = [], []
    for i, per_site in enumerate(backbone.dyt_masks):
        for site, m in per_site.items():
            active = m[row, backbone.num_prefix_tokens:].bool().cpu()
            masks.append(active.reshape(grids[len(masks)]))
            label = f'L{i}' if len(per_site) == 1 else f'L{i} {site}'
            titles.append(
                f'{label}: {100 * float(active.float().mean()):.0f}%')
    return masks, titles, feats


def dispatch_panels(
    image: np.ndarray,
    masks: Sequence[torch.Tensor],
    alpha: float = 0.7,
    color: Sequence[int] = (225, 225, 225)
) -> List[np.ndarray]:
    """Per 2-D mask ``(h, w)``: the image with inactive patches blended
    towards a light grey (visible on dark and bright images alike)."""
    H, W = image.shape[:2]
    panels = []
    for mask in masks:
        gh, gw = mask.shape
        active = mask.float().numpy()
        up = np.kron(active, np.ones((math.ceil(H / gh), math.ceil(W / gw))))
        inactive = (1.0 - up[:H, :W, None]) * alpha
        blend = image * (1 - inactive) + np.asarray(color) * inactive
        panels.append(blend.round().clip(0, 255).astype(np.uint8))
    return panels


def resize_display(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The display image at the model's input size ``(H, W)``."""
    if tuple(image.shape[:2]) == tuple(size):
        return image
    t = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=tuple(size)).round().clamp(0, 255)
    return t[0].permute(1, 2, 0).numpy().astype(np.uint8)


def save_panel_grid(path: str,
                    images: Sequence[np.ndarray],
                    titles: Sequence[str],
                    suptitle: str,
                    ncols: int = 6,
                    panel_size: float = 2.0) -> Tuple[int, int]:
    """Write the panels as one PNG (``ncols`` per row, ``panel_size``
    inches at 100 dpi); return its size in pixels."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * panel_size, nrows * panel_size * 1.12),
        dpi=100,
        squeeze=False)
    for ax, img, t in zip(axes.flat, images, titles):
        ax.imshow(img, interpolation='nearest')
        ax.set_title(t, fontsize=9)
    for ax in axes.flat:
        ax.axis('off')
    fig.suptitle(suptitle, fontsize=10)
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=0.88, wspace=0.05, hspace=0.25)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    size = fig.canvas.get_width_height()
    plt.close(fig)
    return size


def predicted_label(model, feats) -> Optional[int]:
    """The top class of a classifier head on the backbone's ``feats``
    (through the model's neck, e.g. a Swin's global pooling), else None."""
    head = getattr(model, 'head', None)
    if head is None:
        return None
    neck = getattr(model, 'neck', None)
    with torch.no_grad():
        if neck is not None:
            feats = neck(feats)
        return int(head(feats)[0].argmax())


# ------------------------------------------------------------------- video
def is_clip_model(model) -> bool:
    """Whether ``model`` is an mmdyt video recognizer (its inputs are clips
    ``(N, V, C, T, H, W)``)."""
    # imported here: mmdyt.models.recognizers imports mmaction2, which an
    # image model does not need
    from mmdyt.models.recognizers import FrameRecognizer
    return isinstance(model, FrameRecognizer)


def load_clip(path: str, cfg, model) -> Tuple[torch.Tensor, np.ndarray]:
    """``(first view (1, C, T, H, W) for the model, its frames (T, H, W, 3)
    uint8 RGB for display)`` of a video file (``VideoDataset`` configs) or a
    folder of frames (``RawframeDataset`` configs, ``filename_tmpl`` of the
    dataset) through the config's test (else val) pipeline and the model's
    data preprocessor."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader:
        raise KeyError('the config has no test_dataloader or val_dataloader '
                       '(its dataset.pipeline loads the clip)')
    dataset = loader['dataset']
    info = dict(modality='RGB', label=-1)
    if osp.isdir(path):
        info.update(
            frame_dir=path,
            total_frames=len(os.listdir(path)),
            start_index=dataset.get('start_index', 1),
            filename_tmpl=dataset.get('filename_tmpl', 'img_{:05}.jpg'))
    else:
        info.update(filename=path, start_index=dataset.get('start_index', 0))
    data = Compose(copy.deepcopy(dataset['pipeline']))(info)
    inputs = model.data_preprocessor(pseudo_collate([data]),
                                     False)['inputs'][:, 0]
    frames = data['inputs'][0].permute(1, 2, 3, 0).numpy()  # (T, H, W, C)
    return inputs, np.ascontiguousarray(frames).astype(np.uint8)


def clip_dispatch_masks(model, clip: torch.Tensor):
    """Run the DyT backbone of a video recognizer (gathered) on one clip
    ``(1, C, T, H, W)``: every frame through the image backbone (the
    per-frame recipe) or the clip through the video backbone.

    Returns:
        tuple: ``masks[t][d]``, the bool ``(h, w)`` mask of dispatcher ``d``
        on frame ``t`` (a VideoMAE tubelet's tokens shown on each of its
        frames); per dispatcher a label ``'L{i}[ site]'``.
    """
    backbone = model.backbone
    T = clip.shape[2]
    x = clip[0].transpose(0, 1) if model.per_frame else clip
    with torch.no_grad(), backbone.dyt_mode('gathered', keep_masks=True):
        backbone(x)
    grids = backbone.dyt_token_grids()
    masks = [[] for _ in range(T)]
    labels = []
    for i, per_site in enumerate(backbone.dyt_masks):
        for site, m in per_site.items():
            grid = grids[len(labels)]
            m = m[:, backbone.num_prefix_tokens:].bool().cpu()
            for t in range(T):
                if model.per_frame:  # row t = frame t, grid (h, w)
                    masks[t].append(m[t].reshape(grid))
                else:  # one clip, grid (T', h, w): frame t in slice t T'/T
                    masks[t].append(m[0].reshape(grid)[t * grid[0] // T])
            labels.append(f'L{i}' if len(per_site) == 1 else f'L{i} {site}')
    return masks, labels
