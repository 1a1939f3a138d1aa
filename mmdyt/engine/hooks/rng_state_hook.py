# Copyright (c) mmdyt contributors. All rights reserved.
"""RNG states in every checkpoint, restored on ``--resume``."""
from typing import List, Optional

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook

from mmdyt.checkpoint import (CHECKPOINT_KEY, FORMAT_VERSION, get_rng_states,
                              set_rng_states)
from mmdyt.registry import HOOKS
from .utils import WarnOnceMixin


@HOOKS.register_module()
class RNGStateHook(WarnOnceMixin, Hook):
    """Store the RNG states in checkpoints and restore them on resume.

    Before a checkpoint is written it stores the torch / numpy / python RNG
    states of every rank and the training sampler's seed in
    ``checkpoint['mmdyt']`` (``rng``, ``sampler_seed``); after a resume it
    restores them at ``before_train`` (after mmengine re-seeds from the
    checkpoint's seed). A ``load_from`` start keeps the config's seed.

    Validation inside training runs between a saved RNG state and a restored
    one (``before_val`` / ``after_val_epoch``), so evaluating does not move
    the training randomness: an uninterrupted run and a resumed one draw the
    same numbers. Exact resume holds for epoch-based loops resumed from an
    epoch checkpoint; mmengine's ``IterBasedTrainLoop`` replays the skipped
    batches through the data pipeline after ``before_train``, which draws
    from the same RNGs, so an iteration-based resume restores the states at
    the resume point but is not bit-identical when the pipeline is random.

    Args:
        priority (int | str): Defaults to ``'LOW'``.
    """

    def __init__(self, priority='LOW'):
        self.priority = priority
        self._gathered = None
        self._val_states = None
        self._pending = None

    # ------------------------------------------------------------- saving
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        info = checkpoint.setdefault(CHECKPOINT_KEY, {})
        info.setdefault('format', FORMAT_VERSION)
        info['rng'] = self._rng_of_all_ranks(runner)
        seed = self._sampler_seed(runner)
        if seed is not None:
            info['sampler_seed'] = seed

    def _rng_of_all_ranks(self, runner) -> dict:
        """This process's states, or (distributed) every rank's as gathered
        just before the save."""
        _, world_size = get_dist_info()
        key = (runner.epoch, runner.iter)
        if world_size > 1:
            if self._gathered is not None and self._gathered[0] == key:
                return dict(world_size=world_size, ranks=self._gathered[1])
            self._warn_once(
                runner, 'ranks',
                f'{type(self).__name__}: a checkpoint was saved at an '
                'unforeseen point; it holds the RNG states of rank 0 only')
            return dict(world_size=world_size, ranks=[get_rng_states()])
        return dict(world_size=1, ranks=[get_rng_states()])

    def _gather(self, runner) -> None:
        if get_dist_info()[1] > 1:
            self._gathered = ((runner.epoch, runner.iter),
                              all_gather_object(get_rng_states()))

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if _checkpoint_due(runner, by_epoch=False):
            self._gather(runner)

    def after_train_epoch(self, runner) -> None:
        if _checkpoint_due(runner, by_epoch=True):
            self._gather(runner)

    @staticmethod
    def _sampler_seed(runner) -> Optional[int]:
        loop = getattr(runner, '_train_loop', None)
        loader = getattr(loop, 'dataloader', None)
        seed = getattr(getattr(loader, 'sampler', None), 'seed', None)
        return int(seed) if isinstance(seed, int) else None

    # ---------------------------------------------------------- validation
    def before_val(self, runner) -> None:
        if _training(runner):
            self._val_states = get_rng_states()
            if any(
                    isinstance(h, CheckpointHook) and h.save_best
                    for h in runner.hooks):
                self._gather(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._val_states is not None:
            set_rng_states(self._val_states)
            self._val_states = None

    # ------------------------------------------------------------- loading
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        info = checkpoint.get(CHECKPOINT_KEY)
        if not isinstance(info, dict):
            return  # a checkpoint of a run without this hook
        meta = checkpoint.get('meta', {})
        self._pending = dict(
            epoch=meta.get('epoch'),
            iter=meta.get('iter'),
            rng=info.get('rng'),
            sampler_seed=info.get('sampler_seed'))

    def before_train(self, runner) -> None:
        pending, self._pending = self._pending, None
        if (pending is None or
            (pending['epoch'], pending['iter']) != (runner.epoch, runner.iter)
                or runner.iter == 0):
            return  # not a resume (e.g. load_from): keep the config's seed
        rank, world_size = get_dist_info()
        rng = pending['rng']
        if rng is not None:
            ranks: List[dict] = rng['ranks']
            if len(ranks) == world_size:
                set_rng_states(ranks[rank])
            else:
                self._warn_once(
                    runner, 'world',
                    f'{type(self).__name__}: the checkpoint holds the RNG '
                    f'states of {len(ranks)} rank(s), this run has '
                    f'{world_size}: rank 0 restores its state, the resume is '
                    'not exact')
                if rank == 0:
                    set_rng_states(ranks[0])
        seed = pending['sampler_seed']
        sampler = getattr(runner.train_dataloader, 'sampler', None)
        if seed is not None and hasattr(sampler, 'seed'):
            sampler.seed = seed
        runner.logger.info(
            f'{type(self).__name__}: restored the RNG states of epoch '
            f'{runner.epoch}, iter {runner.iter}')


def _training(runner) -> bool:
    """Whether the runner is inside ``train()`` (a ValLoop between epochs)."""
    loop = getattr(runner, '_train_loop', None)
    return loop is not None and not isinstance(loop, dict) and \
        runner.iter > 0


def _checkpoint_due(runner, by_epoch: bool) -> bool:
    """Whether a ``CheckpointHook`` saves at the current train iteration
    (``by_epoch=False``) or epoch end (``by_epoch=True``)."""
    for hook in runner.hooks:
        if not isinstance(hook, CheckpointHook) or hook.by_epoch != by_epoch:
            continue
        start = getattr(hook, 'save_begin', 0)
        if by_epoch:
            due = hook.every_n_epochs(
                runner, hook.interval,
                start) or (hook.save_last and hook.is_last_train_epoch(runner))
        else:
            due = hook.every_n_train_iters(
                runner, hook.interval,
                start) or (hook.save_last and hook.is_last_train_iter(runner))
        if due:
            return True
    return False
