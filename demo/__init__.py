# Copyright (c) mmdyt contributors. All rights reserved.
"""The offline demo (image, video, budget tasks and the digits data it
writes). It imports mmdyt; mmdyt never imports it. Run it through
``tools/demo.py``; it is not part of the installed ``mmdyt`` package."""
