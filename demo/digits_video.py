# Copyright (c) mmdyt contributors. All rights reserved.
"""Tiny real video data: scikit-learn's handwritten digits moving across
the frames, written as encoded video files (and optionally raw frames) in
mmaction2's Kinetics layouts. The logic of
``tools/dataset_converters/digits2video.py`` and of the video demo.

Each of ``load_digits``' real 8x8 scans becomes one clip: the digit (2x,
nearest) moves across the canvas in one of four directions, at a random
offset across the motion. Two label sets: ``digit`` (readable from any
frame) and ``direction`` (0 left-to-right, 1 right-to-left, 2 top-to-bottom,
3 bottom-to-top: opposite directions hold the same *set* of frames in
reverse order, so only a model that sees the order can tell them apart; a
set of frames reaches at most 50%, horizontal vs vertical).
"""
import os
import os.path as osp
from types import SimpleNamespace
from typing import Optional, Sequence

import cv2
import numpy as np
from sklearn.datasets import load_digits

TASKS = {'pretrain': range(0, 5), 'adapt': range(5, 10)}
LABEL_SETS = ('digit', 'direction')
DIRECTIONS = ('left-to-right', 'right-to-left', 'top-to-bottom',
              'bottom-to-top')


def render_clip(digit: np.ndarray, direction: int, offset: int, size: int,
                frames: int) -> np.ndarray:
    """``(frames, size, size)`` uint8 frames of ``digit`` (an 8x8 scan with
    values 0-16) moving in ``direction`` (an index of :data:`DIRECTIONS`),
    ``offset`` pixels from the canvas edge across the motion."""
    sprite = np.kron(digit * (255.0 / 16.0), np.ones((2, 2))).round()
    sprite = sprite.astype(np.uint8)
    d = sprite.shape[0]
    travel = size - d
    steps = np.round(np.linspace(0, travel, frames)).astype(int)
    if direction in (1, 3):
        steps = steps[::-1]
    clip = np.zeros((frames, size, size), np.uint8)
    for t, s in enumerate(steps):
        y, x = (offset, s) if direction in (0, 1) else (s, offset)
        clip[t, y:y + d, x:x + d] = sprite
    return clip


def write_video(path: str, clip: np.ndarray, fps: int, fourcc: str) -> None:
    size = (clip.shape[2], clip.shape[1])
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write {fourcc!r} video {path}; '
                           'choose another --fourcc / --ext (e.g. MJPG avi)')
    for frame in clip:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def write_task(root: str, images, labels, classes, args, rng) -> dict:
    """Write one task (``args``: the options of :func:`write_digit_videos`)."""
    idx = rng.permutation(np.flatnonzero(np.isin(labels, list(classes))))
    directions = rng.integers(0, len(DIRECTIONS), len(labels))
    sprite = 16
    offsets = rng.integers(0, args.size - sprite + 1, len(labels))
    half = len(idx) // 2
    counts = {}
    for split, members in (('train', idx[:half]), ('test', idx[half:])):
        members = sorted(members)[:args.max_per_split]
        lists = {
            (kind, ls): []
            for kind in ('videos', 'rawframes')
            for ls in LABEL_SETS
        }
        os.makedirs(osp.join(root, 'videos', split), exist_ok=True)
        for i in members:
            clip = render_clip(images[i], int(directions[i]), int(offsets[i]),
                               args.size, args.frames)
            video = f'videos/{split}/{i:04d}.{args.ext}'
            write_video(osp.join(root, video), clip, args.fps, args.fourcc)
            frames_dir = f'rawframes/{split}/{i:04d}'
            if args.rawframes:
                os.makedirs(osp.join(root, frames_dir), exist_ok=True)
                for t, frame in enumerate(clip):
                    cv2.imwrite(
                        osp.join(root, frames_dir, f'img_{t + 1:05d}.jpg'),
                        cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
            label = {
                'digit': int(labels[i]) - classes[0],
                'direction': int(directions[i])
            }
            for ls in LABEL_SETS:
                lists['videos', ls].append(f'{video} {label[ls]}')
                lists['rawframes',
                      ls].append(f'{frames_dir} {args.frames} {label[ls]}')
        for (kind, ls), lines in lists.items():
            if kind == 'rawframes' and not args.rawframes:
                continue
            with open(osp.join(root, f'{split}_list_{kind}_{ls}.txt'),
                      'w') as f:
                f.write('\n'.join(lines) + '\n')
        counts[split] = len(members)
    return counts


def write_digit_videos(out_dir: str,
                       size: int = 32,
                       frames: int = 8,
                       fps: int = 8,
                       fourcc: str = 'mp4v',
                       ext: str = 'mp4',
                       rawframes: bool = False,
                       tasks: Sequence[str] = tuple(TASKS),
                       max_per_split: Optional[int] = None,
                       seed: int = 0) -> dict:
    """Write the ``tasks`` (``'pretrain'``: digits 0-4, ``'adapt'``: 5-9),
    each split by ``seed`` into half ``train``, half ``test`` clips::

        OUT/<task>/videos/<split>/0123.mp4
        OUT/<task>/<split>_list_videos_<labels>.txt     "videos/... label"
        OUT/<task>/rawframes/<split>/0123/img_00001.jpg  (rawframes=True)
        OUT/<task>/<split>_list_rawframes_<labels>.txt  "rawframes/... 8 label"

    Returns:
        dict: Task -> split -> number of clips.
    """
    if size < 20 or frames < 2:
        raise ValueError(f'size must be >= 20 and frames >= 2, got {size}, '
                         f'{frames}')
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f'unknown tasks {sorted(unknown)}; allowed: '
                         f'{list(TASKS)}')
    digits = load_digits()
    args = SimpleNamespace(
        size=size,
        frames=frames,
        fps=fps,
        fourcc=fourcc,
        ext=ext,
        rawframes=rawframes,
        max_per_split=max_per_split)
    counts = {}
    for task in tasks:
        rng = np.random.default_rng([seed, list(TASKS).index(task)])
        counts[task] = write_task(
            osp.join(out_dir, task), digits.images, digits.target, TASKS[task],
            args, rng)
    return counts
