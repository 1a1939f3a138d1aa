# Copyright (c) mmdyt contributors. All rights reserved.
"""The README stays short and every relative link of the README, the docs
and the config READMEs resolves (the file exists; a ``#anchor`` names a
heading of that page, slugged as GitHub and myst-parser slug them). CI has no
network, so links to other sites are not fetched; the Sphinx build (-W) in
.ci/run checks the docs' own cross-references."""
import glob
import os.path as osp
import re

import pytest

from ..conftest import REPO_ROOT

PAGES = sorted(
    [osp.join(REPO_ROOT, 'README.md')] +
    glob.glob(osp.join(REPO_ROOT, 'docs', '**', '*.md'), recursive=True) +
    glob.glob(
        osp.join(REPO_ROOT, 'configs', '**', 'README.md'), recursive=True))
PAGES = [p for p in PAGES if '_build' not in p]
LINK_RE = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def _strip_code(text):
    text = re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)
    return re.sub(r'`[^`\n]*`', '', text)


def slug(heading):
    """GitHub's / myst-parser's anchor of a heading."""
    text = re.sub(r'`([^`]*)`', r'\1', heading.strip().lower())
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path):
    with open(path) as f:
        text = re.sub(r'^```.*?^```', '', f.read(), flags=re.S | re.M)
    return {
        slug(m.group(1))
        for m in re.finditer(r'^#{1,6}\s+(.*)$', text, re.M)
    }


def relative_links(path):
    with open(path) as f:
        text = _strip_code(f.read())
    return [
        m.group(1) for m in LINK_RE.finditer(text)
        if not re.match(r'^[a-z]+:', m.group(1))
    ]


def test_readme_is_short_and_keeps_the_quick_start():
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        text = f.read()
    assert len(text.splitlines()) < 250
    assert 'bash tools/demo.sh' in text and 'bash tools/run_tests.sh' in text


def test_slug_as_github():
    assert slug('Budgets: one checkpoint, many activation rates') == \
        'budgets-one-checkpoint-many-activation-rates'
    assert slug('Video (mmaction2)') == 'video-mmaction2'
    assert slug('`mmdyt::` config bases') == 'mmdyt-config-bases'


def test_link_extraction():
    text = ('[a](x.md) ![img](y.png "t") [web](https://e.org) '
            '`[code](no.md)` [b](z.md#sec)')
    assert [
        m.group(1) for m in LINK_RE.finditer(_strip_code(text))
        if not m.group(1).startswith('http')
    ] == ['x.md', 'y.png', 'z.md#sec']


@pytest.mark.parametrize(
    'page', PAGES, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_relative_links_resolve(page):
    broken = []
    for link in relative_links(page):
        target, _, anchor = link.partition('#')
        path = osp.normpath(osp.join(osp.dirname(page), target)) \
            if target else page
        if not osp.exists(path):
            broken.append(link)
        elif anchor and path.endswith('.md') and anchor not in anchors(path):
            broken.append(link)
    assert not broken, f'{osp.relpath(page, REPO_ROOT)}: {broken}'
