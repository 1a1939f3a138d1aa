# Copyright (c) mmdyt contributors. All rights reserved.
"""Complete and check VTAB-1K task folders in the common layout.

The layout (NOAH / SSF / RepAdapter / DyT): ``<task>/`` holds the images and
lists of ``relative/path label`` lines, ``train800.txt``, ``val200.txt``,
``train800val200.txt`` (their union: what the configs train on) and
``test.txt``. For each task this writes ``train800val200.txt`` from the two
parts when it is missing (an existing one is never overwritten), then checks
that every listed image exists and every label is an integer::

    python tools/dataset_converters/vtab1k_lists.py data/vtab-1k/cifar
    python tools/dataset_converters/vtab1k_lists.py data/vtab-1k --all

Exits with status 1 and a message naming the first problem.
"""
import argparse
import os
import os.path as osp
import sys

LISTS = ('train800.txt', 'val200.txt', 'train800val200.txt', 'test.txt')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'root',
        help='a task folder, or with --all the '
        'folder holding the task folders')
    parser.add_argument(
        '--all',
        action='store_true',
        help='every sub-folder of ROOT that has a test.txt')
    return parser.parse_args(argv)


def read_list(path: str):
    """``[(relative path, label)]`` of a VTAB-1K list.

    Raises:
        ValueError: For a line that is not ``path integer``.
    """
    items = []
    with open(path) as f:
        for num, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise ValueError(f'{path}:{num}: expected "path label", got '
                                 f'{line.rstrip()!r}')
            items.append((parts[0], int(parts[1])))
    return items


def complete_and_check(task_dir: str) -> dict:
    """Write a missing ``train800val200.txt``, check the lists' images.

    Returns:
        dict: Per list name: ``num_images`` and ``num_classes``.

    Raises:
        FileNotFoundError: A list (``test.txt``, or both the combined list
            and one of its parts) or a listed image is missing.
        ValueError: A malformed line.
    """
    combined = osp.join(task_dir, 'train800val200.txt')
    parts = [osp.join(task_dir, n) for n in ('train800.txt', 'val200.txt')]
    if not osp.exists(combined):
        missing = [p for p in parts if not osp.exists(p)]
        if missing:
            raise FileNotFoundError(
                f'{combined} is missing and cannot be written: {missing[0]} '
                'does not exist')
        with open(combined, 'w') as out:
            for part in parts:
                lines = [f'{p} {label}\n' for p, label in read_list(part)]
                out.writelines(lines)
        print(f'wrote {combined}')
    if not osp.exists(osp.join(task_dir, 'test.txt')):
        raise FileNotFoundError(f'{osp.join(task_dir, "test.txt")} does not '
                                'exist')
    summary = {}
    for name in LISTS:
        path = osp.join(task_dir, name)
        if not osp.exists(path):
            continue
        items = read_list(path)
        for rel, _ in items:
            if not osp.exists(osp.join(task_dir, rel)):
                raise FileNotFoundError(
                    f'{path} lists {rel}, but {osp.join(task_dir, rel)} does '
                    'not exist')
        summary[name] = dict(
            num_images=len(items),
            num_classes=len({label
                             for _, label in items}))
    return summary


def main(argv=None) -> dict:
    args = parse_args(argv)
    tasks = [args.root]
    if args.all:
        tasks = sorted(
            osp.join(args.root, d) for d in os.listdir(args.root)
            if osp.isfile(osp.join(args.root, d, 'test.txt'))
            or osp.isfile(osp.join(args.root, d, 'train800.txt')))
        if not tasks:
            sys.exit(f'no task folder (with test.txt) under {args.root}')
    result = {}
    for task in tasks:
        try:
            result[task] = complete_and_check(task)
        except (FileNotFoundError, ValueError) as err:
            sys.exit(f'{task}: {err}')
        counts = ', '.join(f'{k} {v["num_images"]} images / '
                           f'{v["num_classes"]} classes'
                           for k, v in result[task].items())
        print(f'{task}: {counts}')
    return result


if __name__ == '__main__':
    main()
