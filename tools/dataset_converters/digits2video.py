# Copyright (c) mmdyt contributors. All rights reserved.
"""Write scikit-learn's handwritten digits as tiny videos of a moving digit.

Real encoded video files (OpenCV's FFmpeg writer, MPEG-4 part 2 ``mp4v`` by
default) that mmaction2's ``DecordInit`` / ``DecordDecode`` (or
``PyAVInit``) read, in the Kinetics layout of ``VideoDataset``; with
``--rawframes`` also the frames as JPEGs in the layout of
``RawframeDataset``. Two tasks (``pretrain``: digits 0-4, ``adapt``: digits
5-9) and two label sets (``digit``, ``direction`` of motion); see
:mod:`demo.digits_video`::

    python tools/dataset_converters/digits2video.py data/digits_video [--rawframes]
"""
import argparse
import os.path as osp
import sys

# demo/ is a top-level package of the repository, not installed with mmdyt
# (first on the path: tools/demo.py would shadow it).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

from demo.digits_video import TASKS, write_digit_videos  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='output root (e.g. data/digits_video)')
    parser.add_argument('--size', type=int, default=32, help='frame side')
    parser.add_argument(
        '--frames', type=int, default=8, help='frames per clip')
    parser.add_argument('--fps', type=int, default=8)
    parser.add_argument(
        '--fourcc',
        default='mp4v',
        help="FFmpeg codec of OpenCV's writer (default mp4v)")
    parser.add_argument('--ext', default='mp4', help='video file extension')
    parser.add_argument(
        '--rawframes',
        action='store_true',
        help='also write the frames as JPEGs (rawframes)')
    parser.add_argument(
        '--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument(
        '--max-per-split',
        type=int,
        default=None,
        help='keep at most N clips per split (tests)')
    parser.add_argument(
        '--seed', type=int, default=0, help='split, direction and offset seed')
    args = parser.parse_args(argv)
    if args.size < 20 or args.frames < 2:
        parser.error('--size must be >= 20 and --frames >= 2')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    counts = write_digit_videos(args.out_dir, args.size, args.frames, args.fps,
                                args.fourcc, args.ext, args.rawframes,
                                args.tasks, args.max_per_split, args.seed)
    print(f'digit videos written to {args.out_dir}: {counts}')
    return counts


if __name__ == '__main__':
    main()
