# Copyright (c) mmdyt contributors. All rights reserved.
"""What mmdyt adds to every Runner checkpoint: plain types, RNG states,
delta weights."""
from typing import List, Optional

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import find_latest_checkpoint

from mmdyt.registry import HOOKS
from mmdyt.utils.checkpoint import (CHECKPOINT_KEY, FORMAT_VERSION,
                                    base_reference, complete_delta,
                                    find_non_plain, from_plain,
                                    get_rng_states, is_delta_checkpoint,
                                    make_delta, set_rng_states, to_plain)


@HOOKS.register_module()
class DyTCheckpointHook(Hook):
    """Checkpoints that load with ``weights_only=True``, resume exactly and
    hold only what was trained.

    On by default in mmdyt's configs
    (``default_hooks.dyt_checkpoint`` in ``configs/_base_/default_runtime.py``);
    add it to any other config with::

        default_hooks = dict(dyt_checkpoint=dict(type='mmdyt.DyTCheckpointHook'))

    Before a checkpoint is written (``before_save_checkpoint``) it

    - rewrites the message hub (``HistoryBuffer``), numpy arrays and scalars
      as plain tensors and Python types (:func:`mmdyt.utils.to_plain`), so the
      file loads in a plain ``torch.load`` (``weights_only=True``), in each
      host's own ``tools/test.py`` and ``--resume`` of its ``tools/train.py``;
    - stores the torch / numpy / python RNG states of every rank and the
      training sampler's seed (``checkpoint['mmdyt']``);
    - with ``delta=True``, keeps in ``state_dict`` only the trained
      (``requires_grad``) parameters and the tensors the frozen base does
      not reproduce, and records the base: the ``Pretrained`` ``init_cfg``
      files and a content hash of the frozen tensors
      (:func:`mmdyt.utils.make_delta`). Without a ``Pretrained`` base every
      tensor is kept.

    After a checkpoint is loaded (``after_load_checkpoint``: ``--resume``,
    ``load_from``, ``tools/test.py``) it restores the message hub, rebuilds a
    delta's frozen base (refusing a base whose hash differs, naming both
    files), and on resume restores the RNG states and the sampler seed at
    ``before_train`` (after mmengine re-seeds from the checkpoint's seed).

    Validation inside training runs between a saved RNG state and a restored
    one (``before_val`` / ``after_val_epoch``), so evaluating does not move
    the training randomness: an uninterrupted run and a resumed one draw the
    same numbers. Exact resume holds for epoch-based loops resumed from an
    epoch checkpoint; mmengine's ``IterBasedTrainLoop`` replays the skipped
    batches through the data pipeline after ``before_train``, which draws
    from the same RNGs, so an iteration-based resume restores the states at
    the resume point but is not bit-identical when the pipeline is random.

    Args:
        delta (bool): Write delta checkpoints. Defaults to True.
        rng (bool): Store and restore RNG states. Defaults to True.
        priority (str): Runs after hooks that add to a checkpoint and before
            ``CheckpointHook`` (``'VERY_LOW'``). Defaults to ``'LOW'``.
    """

    def __init__(self, delta: bool = True, rng: bool = True,
                 priority: str = 'LOW'):
        self.delta = bool(delta)
        self.rng = bool(rng)
        self.priority = priority
        self._reference = None
        self._gathered = None
        self._val_states = None
        self._pending = None
        self._warned: set = set()

    # ------------------------------------------------------------- saving
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        info = dict(format=FORMAT_VERSION, plain=True, delta=None)
        if self.rng:
            info['rng'] = self._rng_of_all_ranks(runner)
            seed = self._sampler_seed(runner)
            if seed is not None:
                info['sampler_seed'] = seed
        if self.delta and self._reference is None:
            self._find_base(runner)
        if self.delta and self._reference is not None:
            delta, record = make_delta(_unwrap(runner.model),
                                       checkpoint['state_dict'],
                                       self._reference)
            checkpoint['state_dict'] = delta
            info['delta'] = record
        for key in list(checkpoint):
            checkpoint[key] = to_plain(checkpoint[key])
        checkpoint[CHECKPOINT_KEY] = info
        shadow = {k: v for k, v in checkpoint.items() if k != 'state_dict'}
        left = find_non_plain(shadow)
        if left:
            self._warn_once(
                runner, 'non-plain',
                'DyTCheckpointHook: these checkpoint entries are no plain '
                'types; torch.load(weights_only=True) may reject the file: ' +
                ', '.join(f'{p} ({t})' for p, t in left[:10]))

    def _find_base(self, runner) -> None:
        """What the frozen base reproduces (on every rank: a base file
        behind a URL is fetched with a barrier)."""
        try:
            self._reference = base_reference(_unwrap(runner.model))
        except RuntimeError as e:  # e.g. a module that cannot be copied
            self.delta = False
            self._warn_once(
                runner, 'no-copy',
                f'DyTCheckpointHook: cannot rebuild the frozen base on a '
                f'copy of the model ({e}); writing full checkpoints')
            return
        if not self._reference[0]:
            self._warn_once(
                runner, 'no-base',
                'DyTCheckpointHook: the model has no init_cfg '
                "type='Pretrained', so there is no frozen base to leave out: "
                'checkpoints hold every tensor')

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
                'DyTCheckpointHook: a checkpoint was saved at an unforeseen '
                'point; it holds the RNG states of rank 0 only')
            return dict(world_size=world_size, ranks=[get_rng_states()])
        return dict(world_size=1, ranks=[get_rng_states()])

    def _gather(self, runner) -> None:
        if get_dist_info()[1] > 1 and self.rng:
            self._gathered = ((runner.epoch, runner.iter),
                              all_gather_object(get_rng_states()))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
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
        if self.rng and _training(runner):
            self._val_states = get_rng_states()
            if any(isinstance(h, CheckpointHook) and h.save_best
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
        for key in list(checkpoint):
            if key not in ('state_dict', CHECKPOINT_KEY):
                checkpoint[key] = from_plain(checkpoint[key])
        if is_delta_checkpoint(checkpoint):
            complete_delta(_unwrap(runner.model), checkpoint,
                           _loading_path(runner))
        meta = checkpoint.get('meta', {})
        self._pending = dict(epoch=meta.get('epoch'), iter=meta.get('iter'),
                             rng=info.get('rng'),
                             sampler_seed=info.get('sampler_seed'))

    def before_train(self, runner) -> None:
        if self.delta and self._reference is None:
            self._find_base(runner)  # before any forward pass: copyable
        pending, self._pending = self._pending, None
        if (pending is None or not self.rng
                or (pending['epoch'], pending['iter']) !=
                (runner.epoch, runner.iter) or runner.iter == 0):
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
                    f'DyTCheckpointHook: the checkpoint holds the RNG states '
                    f'of {len(ranks)} rank(s), this run has {world_size}: '
                    'rank 0 restores its state, the resume is not exact')
                if rank == 0:
                    set_rng_states(ranks[0])
        seed = pending['sampler_seed']
        sampler = getattr(runner.train_dataloader, 'sampler', None)
        if seed is not None and hasattr(sampler, 'seed'):
            sampler.seed = seed
        runner.logger.info(
            f'DyTCheckpointHook: restored the RNG states of epoch '
            f'{runner.epoch}, iter {runner.iter}')

    def _warn_once(self, runner, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print_log(msg, logger=runner.logger, level=30)


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


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
            due = hook.every_n_epochs(runner, hook.interval, start) or (
                hook.save_last and hook.is_last_train_epoch(runner))
        else:
            due = hook.every_n_train_iters(runner, hook.interval, start) or (
                hook.save_last and hook.is_last_train_iter(runner))
        if due:
            return True
    return False


def _loading_path(runner) -> Optional[str]:
    """The file the runner is loading (for error messages)."""
    cfg = runner.cfg
    if cfg.get('load_from'):
        return cfg.load_from
    if cfg.get('resume'):
        return find_latest_checkpoint(runner.work_dir)
    return None
