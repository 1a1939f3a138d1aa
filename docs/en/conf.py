# Copyright (c) mmdyt contributors. All rights reserved.
"""Sphinx configuration of mmdyt's docs (docs/en).

Build (CI runs it with -W, warnings are errors)::

    python -m sphinx -W --keep-going -b html docs/en docs/en/_build/html

Markdown pages go through myst-parser; the theme is furo (on PyPI; OpenMMLab's
pytorch_sphinx_theme is not); the API reference comes from the docstrings
(autodoc + napoleon, Google style: Args / Returns / Raises); the model zoo
page is generated from model-index.yml and the metafiles at every build.
"""
import os
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from stat_model_zoo import write_model_zoo  # noqa: E402

import mmdyt  # noqa: E402

project = 'mmdyt'
copyright = 'mmdyt contributors'
author = 'mmdyt contributors'
version = release = mmdyt.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'myst_parser',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
master_doc = 'index'
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']
# `## Heading` -> `page.md#heading` anchors, as GitHub renders them
myst_heading_anchors = 4
myst_enable_extensions = ['colon_fence']
# links to repository files outside docs/en (configs, tools, README.md) are
# plain links on purpose (tests/test_packaging/test_links.py resolves them)
suppress_warnings = ['myst.xref_missing']

autodoc_member_order = 'bysource'
autodoc_default_options = {'members': True, 'show-inheritance': True}
autoclass_content = 'class'
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = 'furo'
html_title = f'mmdyt {release}'
html_static_path = []

# docs/en/model_zoo.md from the metafiles (generated, not committed)
write_model_zoo(REPO, osp.join(HERE, 'model_zoo.md'))
