# Copyright (c) mmdyt contributors. All rights reserved.
"""Write scikit-learn's handwritten digits as tiny videos of a moving digit.

Each of ``load_digits``' real 8x8 scans becomes one clip of ``--frames``
frames: the digit (upscaled 2x, nearest) moves across a ``--size`` canvas in
one of four directions, at a random offset across the motion. Clips are
encoded as real video files (OpenCV's FFmpeg writer, MPEG-4 part 2 ``mp4v``
by default) that mmaction2's ``DecordInit`` / ``DecordDecode`` (or
``PyAVInit``) read, in the Kinetics layout of mmaction2's ``VideoDataset``;
``--rawframes`` also writes every frame as a JPEG in the rawframes layout of
``RawframeDataset``::

    OUT/<task>/videos/<split>/0123.mp4
    OUT/<task>/<split>_list_videos_<labels>.txt        "videos/<split>/0123.mp4 label"
    OUT/<task>/rawframes/<split>/0123/img_00001.jpg    (--rawframes)
    OUT/<task>/<split>_list_rawframes_<labels>.txt     "rawframes/<split>/0123 8 label"

Tasks: ``pretrain`` (digits 0-4) and ``adapt`` (digits 5-9), each split by
a fixed seed into half ``train``, half ``test`` clips. Two label sets:

- ``digit``: the digit (0-4 within a task), readable from any single frame;
- ``direction``: 0 left-to-right, 1 right-to-left, 2 top-to-bottom,
  3 bottom-to-top. The clips of opposite directions hold the same *set* of
  frames in reverse order, so only a model that sees the order of the frames
  can tell them apart (a set of frames reaches at most 50%: horizontal vs
  vertical).

    python tools/dataset_converters/digits2video.py data/digits_video [--rawframes]
"""
import argparse
import os
import os.path as osp

import numpy as np

TASKS = {'pretrain': range(0, 5), 'adapt': range(5, 10)}
LABEL_SETS = ('digit', 'direction')
DIRECTIONS = ('left-to-right', 'right-to-left', 'top-to-bottom',
              'bottom-to-top')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='output root (e.g. data/digits_video)')
    parser.add_argument('--size', type=int, default=32, help='frame side')
    parser.add_argument('--frames', type=int, default=8,
                        help='frames per clip')
    parser.add_argument('--fps', type=int, default=8)
    parser.add_argument('--fourcc', default='mp4v',
                        help="FFmpeg codec of OpenCV's writer (default mp4v)")
    parser.add_argument('--ext', default='mp4', help='video file extension')
    parser.add_argument('--rawframes', action='store_true',
                        help='also write the frames as JPEGs (rawframes)')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS),
                        choices=list(TASKS))
    parser.add_argument('--max-per-split', type=int, default=None,
                        help='keep at most N clips per split (tests)')
    parser.add_argument('--seed', type=int, default=0,
                        help='split, direction and offset seed')
    args = parser.parse_args(argv)
    if args.size < 20 or args.frames < 2:
        parser.error('--size must be >= 20 and --frames >= 2')
    return args


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
    import cv2
    size = (clip.shape[2], clip.shape[1])
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps,
                             size)
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write {fourcc!r} video {path}; '
                           'choose another --fourcc / --ext (e.g. MJPG avi)')
    for frame in clip:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def write_task(root: str, images, labels, classes, args, rng) -> dict:
    import cv2
    idx = rng.permutation(np.flatnonzero(np.isin(labels, list(classes))))
    directions = rng.integers(0, len(DIRECTIONS), len(labels))
    sprite = 16
    offsets = rng.integers(0, args.size - sprite + 1, len(labels))
    half = len(idx) // 2
    counts = {}
    for split, members in (('train', idx[:half]), ('test', idx[half:])):
        members = sorted(members)[:args.max_per_split]
        lists = {(kind, ls): [] for kind in ('videos', 'rawframes')
                 for ls in LABEL_SETS}
        os.makedirs(osp.join(root, 'videos', split), exist_ok=True)
        for i in members:
            clip = render_clip(images[i], int(directions[i]),
                               int(offsets[i]), args.size, args.frames)
            video = f'videos/{split}/{i:04d}.{args.ext}'
            write_video(osp.join(root, video), clip, args.fps, args.fourcc)
            frames_dir = f'rawframes/{split}/{i:04d}'
            if args.rawframes:
                os.makedirs(osp.join(root, frames_dir), exist_ok=True)
                for t, frame in enumerate(clip):
                    cv2.imwrite(
                        osp.join(root, frames_dir, f'img_{t + 1:05d}.jpg'),
                        cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
            label = {'digit': int(labels[i]) - classes[0],
                     'direction': int(directions[i])}
            for ls in LABEL_SETS:
                lists['videos', ls].append(f'{video} {label[ls]}')
                lists['rawframes', ls].append(
                    f'{frames_dir} {args.frames} {label[ls]}')
        for (kind, ls), lines in lists.items():
            if kind == 'rawframes' and not args.rawframes:
                continue
            with open(osp.join(root, f'{split}_list_{kind}_{ls}.txt'),
                      'w') as f:
                f.write('\n'.join(lines) + '\n')
        counts[split] = len(members)
    return counts


def main(argv=None) -> dict:
    args = parse_args(argv)
    from sklearn.datasets import load_digits
    digits = load_digits()
    counts = {}
    for task in args.tasks:
        rng = np.random.default_rng([args.seed, list(TASKS).index(task)])
        counts[task] = write_task(
            osp.join(args.out_dir, task), digits.images, digits.target,
            TASKS[task], args, rng)
    print(f'digit videos written to {args.out_dir}: {counts}')
    return counts


if __name__ == '__main__':
    main()
