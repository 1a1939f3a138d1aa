# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt models: the task-agnostic DyT core and the host integrations."""
from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .recognizers import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
