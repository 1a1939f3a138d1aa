# Copyright (c) mmdyt contributors. All rights reserved.
"""Datasets and transforms (the hosts' own loaders cover the paper's layouts)."""
