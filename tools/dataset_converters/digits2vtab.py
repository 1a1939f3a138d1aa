# Copyright (c) mmdyt contributors. All rights reserved.
"""Write scikit-learn's handwritten digits as VTAB-1K-style image folders.

``load_digits`` (1,797 real 8x8 scans, shipped inside scikit-learn) is the
offline data set of the demo. Two tasks are written, in the common VTAB-1K
layout (``images/`` plus ``train800val200.txt`` and ``test.txt`` lists of
``path label``), that mmpretrain's ``CustomDataset`` reads unchanged::

    OUT/pretrain   digits 0-4 in 4 rotations (0/90/180/270 degrees),
                   labels 4 * digit + k     (pre-train the ViT, 20 classes)
    OUT/adapt      digits 5-9, labels 0-4   (downstream task for DyT)

Each task is split by a fixed seed into half training, half test images.
Images are upscaled to ``--size`` pixels (bicubic) and saved as RGB PNG
(``demo.image.write_digits``).

    python tools/dataset_converters/digits2vtab.py data/digits
"""
import argparse
import os.path as osp
import sys

# demo/ is a top-level package of the repository, not installed with mmdyt
# (first on the path: tools/demo.py would shadow it).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

from demo.image import write_digits  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='output root (e.g. data/digits)')
    parser.add_argument('--size', type=int, default=16, help='image side')
    parser.add_argument('--seed', type=int, default=0, help='split seed')
    parser.add_argument(
        '--rotations',
        type=int,
        default=4,
        choices=(1, 2, 4),
        help='rotated copies per pre-training image')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    counts = write_digits(args.out_dir, args.size, args.seed, args.rotations)
    print(f'digits written to {args.out_dir}: {counts}')
    return counts


if __name__ == '__main__':
    main()
