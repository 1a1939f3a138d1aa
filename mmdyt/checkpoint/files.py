# Copyright (c) mmdyt contributors. All rights reserved.
"""Checkpoint files: integrity checks, weights_only loading, resume search."""
import glob
import logging
import os.path as osp
import zipfile
from typing import Any, List, Optional

import torch
from mmengine.logging import print_log

from .serialization import runner_checkpoint_safe_globals_scope


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message names the file."""


def check_checkpoint_file(path: str) -> str:
    """Raise :class:`CheckpointError` (naming ``path``) unless it is a
    complete torch checkpoint; returns ``path``.

    torch's zip format stores a CRC-32 of every member: a truncated file has
    no central directory, a damaged one fails a CRC (members written without
    a CRC, ``torch.serialization.set_crc32_options(False)``, are not
    checked). A non-zip (legacy) file is checked by loading it.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If it is truncated, corrupt or no torch checkpoint.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'PK\x03\x04':
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.CRC == 0 and info.file_size > 0:
                        continue  # written without a CRC
                    with archive.open(info) as member:
                        while member.read(1 << 24):
                            pass
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise CheckpointError(
                f'checkpoint {path} is truncated or corrupt ({e}); it was '
                'probably cut off while being written (a killed run, a full '
                'disk) or damaged in a copy') from e
        return path
    try:
        with runner_checkpoint_safe_globals_scope():
            torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 (any failure means unreadable)
        raise CheckpointError(
            f'checkpoint {path} is truncated, corrupt or no torch checkpoint '
            f'({type(e).__name__}: {e})') from e
    return path


def load_checkpoint_file(path: str, map_location='cpu', mmap=False) -> dict:
    """``torch.load(path, weights_only=True)`` of a checked file; a legacy
    mmdyt Runner checkpoint loads inside the scoped allowlist.

    Raises:
        CheckpointError: If the file is unreadable (names ``path``).
    """
    check_checkpoint_file(path)
    try:
        with runner_checkpoint_safe_globals_scope():
            return torch.load(
                path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(
            f'checkpoint {path} cannot be loaded with weights_only=True '
            f'({type(e).__name__}: {e})') from e


def find_resume_checkpoint(work_dir: str,
                           logger: Optional[Any] = None) -> Optional[str]:
    """The newest readable resumable checkpoint of ``work_dir``, or None if
    it has no checkpoint.

    Candidates: the file ``work_dir/last_checkpoint`` names (mmengine's
    choice), then every ``*.pth`` in ``work_dir``, newest first. Unreadable
    ones are skipped with a warning naming each file and why; readable ones
    without optimizer state (``CheckpointHook``'s ``best_*.pth``) are no
    resume points and are passed over.

    Raises:
        CheckpointError: If there are checkpoints but none is readable and
            resumable (never a silent fresh start).
    """
    candidates: List[str] = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            candidates.append(named)
    files = sorted(
        glob.glob(osp.join(work_dir, '*.pth')),
        key=lambda p: (osp.getmtime(p), p),
        reverse=True)
    candidates += [
        p for p in files if osp.abspath(p) not in map(osp.abspath, candidates)
    ]
    failures, passed = [], []
    for path in candidates:
        try:
            check_checkpoint_file(path)
            resumable = _is_resumable(load_checkpoint_file(path, mmap=True))
        except (CheckpointError, FileNotFoundError) as e:
            failures.append(str(e))
            continue
        if not resumable:
            passed.append(path)
            continue
        if failures:
            print_log(
                'resume: skipped unreadable checkpoint(s): ' +
                '; '.join(failures) + f'; resuming from {path} instead',
                logger=logger or 'current',
                level=logging.WARNING)
        return path
    if failures or passed:
        raise CheckpointError(
            f'--resume: no readable checkpoint with optimizer state in '
            f'{work_dir}: ' +
            '; '.join(failures +
                      [f'{p} has no optimizer state' for p in passed]))
    return None


def _is_resumable(checkpoint) -> bool:
    return isinstance(checkpoint, dict) and 'optimizer' in checkpoint \
        and 'meta' in checkpoint
