# Copyright (c) mmdyt contributors. All rights reserved.
"""Small helpers the checkpoint hooks share."""
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper


def unwrap_model(model):
    """The model inside a DDP / FSDP wrapper (or ``model`` itself)."""
    return model.module if is_model_wrapper(model) else model


class WarnOnceMixin:
    """``self._warn_once(runner, key, msg)``: log ``msg`` as a warning the
    first time ``key`` is seen by this hook."""

    def _warn_once(self, runner, key: str, msg: str) -> None:
        warned = self.__dict__.setdefault('_warned', set())
        if key not in warned:
            warned.add(key)
            print_log(msg, logger=runner.logger, level=30)
