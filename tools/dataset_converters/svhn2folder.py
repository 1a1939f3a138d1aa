# Copyright (c) mmdyt contributors. All rights reserved.
"""Convert an official SVHN ``.mat`` (format 2, cropped digits) to folders.

SVHN (http://ufldl.stanford.edu/housenumbers/) ships ``train_32x32.mat`` and
``test_32x32.mat``: ``X`` is ``32 x 32 x 3 x N`` (uint8 RGB), ``y`` is
``N x 1`` with labels 1..10, where 10 is the digit 0. mmpretrain has no SVHN
class, so ``configs/dyt/image/dyt_vit-b16_svhn.py`` reads an ImageFolder
layout with ``CustomDataset``; this writes it::

    python tools/dataset_converters/svhn2folder.py train_32x32.mat data/svhn/train
    python tools/dataset_converters/svhn2folder.py test_32x32.mat data/svhn/test

Output: ``OUT/<digit 0..9>/<index:06d>.png``; the folder name is the digit,
so ``CustomDataset``'s sorted folder order gives label = digit.
"""
import argparse
import os
import os.path as osp

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mat', help='train_32x32.mat or test_32x32.mat')
    parser.add_argument('out_dir', help='output folder, e.g. data/svhn/train')
    return parser.parse_args(argv)


def load_svhn_mat(path: str):
    """``(images N x 32 x 32 x 3 uint8, digits N int)`` from an SVHN
    ``.mat``; label 10 becomes the digit 0.

    Raises:
        ValueError: If the file has no ``X``/``y`` of SVHN's shapes.
    """
    from scipy.io import loadmat
    mat = loadmat(path)
    if 'X' not in mat or 'y' not in mat:
        raise ValueError(f'{path}: expected the SVHN keys X and y, got '
                         f'{sorted(k for k in mat if not k.startswith("__"))}')
    x, y = mat['X'], np.asarray(mat['y']).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.shape[0]:
        raise ValueError(f'{path}: X must be H x W x 3 x N with N = len(y), '
                         f'got X {x.shape}, y {y.shape}')
    if y.min() < 1 or y.max() > 10:
        raise ValueError(f'{path}: SVHN labels are 1..10, got '
                         f'{y.min()}..{y.max()}')
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), (y % 10).astype(int)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from PIL import Image
    images, digits = load_svhn_mat(args.mat)
    counts = {}
    for digit in range(10):
        os.makedirs(osp.join(args.out_dir, str(digit)), exist_ok=True)
    for i, (img, digit) in enumerate(zip(images, digits)):
        Image.fromarray(img).save(
            osp.join(args.out_dir, str(digit), f'{i:06d}.png'))
        counts[int(digit)] = counts.get(int(digit), 0) + 1
    print(f'{len(images)} images written to {args.out_dir}: '
          f'{dict(sorted(counts.items()))}')
    return counts


if __name__ == '__main__':
    main()
