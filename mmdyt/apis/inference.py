# Copyright (c) mmdyt contributors. All rights reserved.
"""Inference on files with a trained DyT model: predictions, their GFLOPs
and activation rates, and (optionally) the dispatch maps.

The predictions come from each host's own inference API on the model of
:func:`~mmdyt.apis.init_dyt_model` (mmpretrain's
``ImageClassificationInferencer``, mmseg's ``inference_model``, mmaction2's
``inference_recognizer``), so they are what a host user gets; DyT adds to
every returned data sample (metainfo) ``dyt_flops`` (FLOPs of that sample,
multiply-add = 1), ``dyt_dense_flops`` (the dense host model's FLOPs on the
same input), ``dyt_rates`` (the activation rate of each dispatcher, a
tensor) and, for videos run as several views, ``dyt_num_views``.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
import torch.nn as nn

#: the extensions read as videos (others are images or frame folders).
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')


class InputFileError(ValueError):
    """An input file that cannot be used; the message names the file."""


def inference_dyt_model(model: nn.Module,
                        inputs: Union[str, Sequence[str]],
                        draw_dir: Optional[str] = None) -> List[dict]:
    """Run a DyT model on image, segmentation-image or video files.

    Args:
        model (nn.Module): A model of :func:`~mmdyt.apis.init_dyt_model`
            (it carries ``cfg``; the config's ``default_scope`` picks the
            host API).
        inputs (str | list[str]): File path(s).
        draw_dir (str, optional): Also draw each input's dispatch map
            (the inactive tokens of every dispatcher greyed; a video: one row
            per frame) to ``draw_dir/<file name>_dispatch.png``.

    Returns:
        list[dict]: Per file: ``file``, ``gflops`` (this input's DyT
        GFLOPs), ``dense_gflops``, ``act_rate`` (mean of the dispatchers'
        rates), ``rates`` (per dispatcher, list), ``data_sample`` (the
        host's data sample with the DyT fields) and the prediction:
        ``pred_label`` and ``pred_score`` (classification, recognition;
        ``pred_class`` where the model knows class names) or ``pred_sem_seg``
        (segmentation, an ``(H, W)`` int array); ``dispatch_map`` (the
        file drawn) with ``draw_dir``.

    Raises:
        InputFileError: If a file does not exist, cannot be read as an
            image, or is a video with fewer frames than the test clip needs.
    """
    files = [inputs] if isinstance(inputs, str) else list(inputs)
    scope = _scope(model)
    for path in files:
        check_input_file(path, model)
    samples = _run_host_api(model, files, scope)
    results = []
    for path, sample in zip(files, samples):
        result = dict(file=path, data_sample=sample, **dyt_fields(sample))
        result.update(_prediction(model, sample, scope))
        if draw_dir is not None:
            result['dispatch_map'] = draw_dispatch_map(model, path, draw_dir)
        results.append(result)
    return results


def dyt_fields(sample) -> dict:
    """``gflops``, ``dense_gflops``, ``act_rate`` and ``rates`` of a data
    sample a DyT model returned.

    Raises:
        KeyError: If the sample carries no DyT fields (no DyT algorithm).
    """
    if 'dyt_flops' not in sample:
        raise KeyError('the data sample has no dyt_flops: the model is no '
                       'DyT algorithm (mmdyt.DyTImageClassifier, '
                       'DyTEncoderDecoder, DyTRecognizer, ...)')
    rates = torch.as_tensor(sample.dyt_rates).float().flatten()
    return dict(
        gflops=float(sample.dyt_flops) / 1e9,
        dense_gflops=float(sample.dyt_dense_flops) / 1e9,
        act_rate=float(rates.mean()),
        rates=rates.tolist())


def check_input_file(path: str, model: Optional[nn.Module] = None) -> None:
    """One clear error naming ``path`` unless it is a readable input.

    Images are decoded (mmcv); videos must decode and have at least as many
    frames as one test clip holds (``clip_len`` of the test pipeline's
    ``SampleFrames``).

    Raises:
        InputFileError: Naming the file and what is wrong.
    """
    if not osp.exists(path):
        raise InputFileError(f'input file {path} does not exist')
    if osp.isdir(path):
        return  # a folder of frames: mmaction2's pipeline reads it
    if path.lower().endswith(VIDEO_EXTENSIONS):
        _check_video(path, model)
        return
    try:
        img = mmcv.imread(path)
    except Exception as e:  # noqa: BLE001 (any decoder failure)
        raise InputFileError(f'input image {path} cannot be read ({e})') \
            from e
    if img is None:
        raise InputFileError(f'input image {path} cannot be read as an '
                             'image (empty, truncated or not an image)')


def _check_video(path: str, model: Optional[nn.Module]) -> None:
    try:
        import decord
        frames = len(decord.VideoReader(path))
    except ImportError:
        return  # the pipeline's own reader reports it
    except Exception as e:  # noqa: BLE001 (any decoder failure)
        raise InputFileError(f'input video {path} cannot be read ({e})') \
            from e
    need = _clip_frames(model)
    if frames < need:
        raise InputFileError(
            f'input video {path} has {frames} frame(s); the test clip needs '
            f'at least {need} (SampleFrames clip_len of the test pipeline)')


def _clip_frames(model: Optional[nn.Module]) -> int:
    """Frames of one test clip (``SampleFrames.clip_len``). A shorter video
    would repeat frames; a longer one with fewer frames than ``clip_len x
    frame_interval`` is sampled by mmaction2 as it is (its test sampling
    wraps around), as ``tools/test.py`` does."""
    cfg = getattr(model, 'cfg', None)
    loader = (cfg.get('test_dataloader') if cfg is not None else None) or {}
    pipeline = cfg.get('test_pipeline') if cfg is not None else None
    pipeline = pipeline or (loader.get('dataset') or {}).get('pipeline') \
        or []
    for step in pipeline:
        if str(step.get('type', '')).endswith('SampleFrames'):
            return int(step.get('clip_len', 1))
    return 1


def _scope(model: nn.Module) -> str:
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError('the model has no cfg: build it with '
                             'mmdyt.apis.init_dyt_model')
    return str(cfg.get('default_scope', 'mmpretrain')).split('.')[0]


def _run_host_api(model, files: List[str], scope: str) -> list:
    if scope == 'mmpretrain':
        from mmpretrain.apis import ImageClassificationInferencer
        inferencer = ImageClassificationInferencer(model)
        return inferencer(files, return_datasamples=True)
    if scope == 'mmseg':
        from mmseg.apis import inference_model
        return [inference_model(model, path) for path in files]
    if scope == 'mmaction':
        from mmaction.apis import inference_recognizer
        return [inference_recognizer(model, path) for path in files]
    raise ValueError(f"default_scope {scope!r}: one of 'mmpretrain', "
                     "'mmseg', 'mmaction'")


def _prediction(model, sample, scope: str) -> dict:
    if scope == 'mmseg':
        return dict(pred_sem_seg=sample.pred_sem_seg.data[0].cpu().numpy())
    scores = sample.pred_score if 'pred_score' in sample else \
        sample.pred_scores.item
    scores = torch.as_tensor(scores).float().cpu()
    label = int(scores.argmax())
    out = dict(
        pred_label=label,
        pred_score=float(scores[label]),
        pred_scores=scores.numpy())
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    if classes:
        out['pred_class'] = classes[label]
    return out


def draw_dispatch_map(model, path: str, out_dir: str) -> str:
    """Draw ``path``'s dispatch map to ``out_dir``; returns the file."""
    # imported here: mmdyt.visualization draws with matplotlib, which the
    # inference API does not import unless a map is asked for
    from mmdyt.visualization import (clip_dispatch_masks, dispatch_masks,
                                     dispatch_panels, is_clip_model, load_clip,
                                     load_input, resize_display,
                                     save_panel_grid)
    os.makedirs(out_dir, exist_ok=True)
    out = osp.join(out_dir,
                   osp.splitext(osp.basename(path))[0] + '_dispatch.png')
    cfg = model.cfg
    if is_clip_model(model):
        clip, frames = load_clip(path, cfg, model)
        masks, labels = clip_dispatch_masks(model, clip)
        images, titles = [], []
        for t, (frame, per_frame) in enumerate(zip(frames, masks)):
            frame = resize_display(frame, clip.shape[-2:])
            images += [frame] + dispatch_panels(frame, per_frame)
            titles += [f'frame {t}'] + list(labels)
        save_panel_grid(out, images, titles, 'DyT dispatch (per frame)',
                        1 + len(labels))
        return out
    inputs, image = load_input(path, cfg, model)
    masks, titles, _ = dispatch_masks(model.backbone, inputs)
    image = resize_display(image, inputs.shape[-2:])
    rate = float(np.mean([float(m.float().mean()) for m in masks]))
    save_panel_grid(
        out, [image] + dispatch_panels(image, masks), ['input'] + list(titles),
        f'DyT: inactive patches greyed, mean rate '
        f'{100 * rate:.0f}%', 4)
    return out
