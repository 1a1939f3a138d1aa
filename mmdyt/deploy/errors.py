# Copyright (c) mmdyt contributors. All rights reserved.
"""The error of the deploy package."""


class DeployError(ValueError):
    """A model, checkpoint or option that cannot be exported (the message
    names the option and what is supported)."""
