# Copyright (c) mmdyt contributors. All rights reserved.
"""rate_sweep.py with a token-merging grid (``--tome-r``): rate x r from one
checkpoint, in-process on the tiny DyT ViT of test_budget_tools."""
import csv

import pytest
import torch
from mmengine.runner import save_checkpoint

from mmdyt.apis import init_dyt_model, load_config
from ..conftest import load_tool, make_imagenet
from .test_budget_tools import CFG


@pytest.fixture(scope='module')
def mlp_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tome_sweep')
    root = make_imagenet(tmp / 'data', num_classes=3, per_class=4, seed=3)
    cfg_path = tmp / 'tiny_dyt.py'
    cfg_path.write_text(
        CFG.replace('{root}', root).replace("variant='attn_mlp'",
                                            "variant='mlp'"))
    model = init_dyt_model(load_config(str(cfg_path)))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.backbone.dyt_layers.named_parameters():
            torch.nn.init.normal_(p, std=0.5 if 'dispatchers' in name else 0.2)
    ckpt = str(tmp / 'trained.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return dict(tmp=tmp, cfg_path=str(cfg_path), ckpt=ckpt)


def test_rate_sweep_over_rate_and_tome_r(mlp_setup, capsys):
    sweep = load_tool('analysis_tools/rate_sweep')
    out = str(mlp_setup['tmp'] / 'sweep')
    s = sweep.main([
        mlp_setup['cfg_path'], mlp_setup['ckpt'], '--rates', '0.5', '1.0',
        '--tome-r', '0', '8', '--calib-batches', '1', '--repeats', '1',
        '--warmup', '0', '--out', out
    ])
    rows = s['rows']
    assert [(r['point'], r['rate_target'], r.get('tome_r')) for r in rows] \
        == [('trained', None, None), ('retargeted', 0.5, 0),
            ('retargeted', 0.5, 8), ('retargeted', 1.0, 0),
            ('retargeted', 1.0, 8)]
    # one retargeting per rate: both r share its calibration
    assert rows[1]['calib_rate'] == rows[2]['calib_rate']
    assert rows[3]['act_rate'] == rows[4]['act_rate'] == 1.0
    # 65 tokens, 8 merged per layer: fewer FLOPs at the same rate; r = 0 is
    # the plain DyT point (the complete model's FLOPs at rate 1)
    assert rows[2]['gflops'] < rows[1]['gflops']
    assert rows[4]['gflops'] < rows[3]['gflops'] > rows[3]['dense_gflops']
    assert len({r['dense_gflops'] for r in rows}) == 1
    with open(s['files']['csv']) as f:
        table = list(csv.DictReader(f))
    assert [t['tome_r'] for t in table] == ['', '0', '8', '0', '8']
    printed = capsys.readouterr().out
    assert 'ToMe r' in printed
