# Copyright (c) mmdyt contributors. All rights reserved.
"""Write scikit-learn's handwritten digits as VTAB-1K-style image folders.

``load_digits`` (1,797 real 8x8 scans, shipped inside scikit-learn) is the
offline data set of the demo. Two tasks are written, in the common VTAB-1K
layout (``images/`` plus ``train800val200.txt`` and ``test.txt`` lists of
``path label``), that mmpretrain's ``CustomDataset`` reads unchanged::

    OUT/pretrain   digits 0-4, labels 0-4   (pre-train the ViT)
    OUT/adapt      digits 5-9, labels 0-4   (downstream task for DyT)

Each task is split by a fixed seed into half training, half test images.
Images are upscaled to ``--size`` pixels (nearest) and saved as RGB PNG.

    python tools/dataset_converters/digits2vtab.py data/digits
"""
import argparse
import os
import os.path as osp

import numpy as np

TASKS = {'pretrain': range(0, 5), 'adapt': range(5, 10)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='output root (e.g. data/digits)')
    parser.add_argument('--size', type=int, default=32, help='image side')
    parser.add_argument('--seed', type=int, default=0, help='split seed')
    return parser.parse_args(argv)


def write_task(root, images, labels, classes, size, rng):
    from PIL import Image
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    idx = np.flatnonzero(np.isin(labels, list(classes)))
    idx = rng.permutation(idx)
    half = len(idx) // 2
    splits = {'train800val200.txt': idx[:half], 'test.txt': idx[half:]}
    for list_name, split in splits.items():
        lines = []
        for i in sorted(split):
            rel = f'images/{i:04d}.png'
            path = osp.join(root, rel)
            if not osp.exists(path):
                grey = (images[i] * (255.0 / 16.0)).round().astype(np.uint8)
                img = Image.fromarray(grey).resize((size, size),
                                                   Image.NEAREST)
                img.convert('RGB').save(path)
            lines.append(f'{rel} {labels[i] - classes[0]}')
        with open(osp.join(root, list_name), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return {k: len(v) for k, v in splits.items()}


def main(argv=None) -> dict:
    args = parse_args(argv)
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(args.seed)
    counts = {}
    for task, classes in TASKS.items():
        counts[task] = write_task(
            osp.join(args.out_dir, task), digits.images, digits.target,
            classes, args.size, rng)
    print(f'digits written to {args.out_dir}: {counts}')
    return counts


if __name__ == '__main__':
    main()
