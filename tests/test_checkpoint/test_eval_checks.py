# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/test.py (and the hosts' runners through the checkpoint hook) stop
with an error, before any metric, on a checkpoint that is not a trained
checkpoint of the config's DyT model."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmdyt.checkpoint import CheckpointError
from ..test_tools.dyt_runs import make_base, make_digits, write_config


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval_checks')
    data = make_digits(root / 'digits')
    base = make_base(root / 'base.pth')
    cfg_path = write_config(root / 'dyt.py', data, base, epochs=1)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(cfg_path)
    host = torch.load(base, weights_only=True)['state_dict']
    model = MODELS.build(cfg.model)
    # a dense full-tuning checkpoint of the same ViT (backbone + head)
    dense = {'backbone.' + k: v for k, v in host.items()}
    dense.update({
        k: v
        for k, v in model.state_dict().items() if k.startswith('head.')
    })
    dense_path = str(root / 'dense_full.pth')
    torch.save(dict(state_dict=dense, meta=dict()), dense_path)
    # a DyT checkpoint at bottleneck 8 (the config says 16)
    cfg8 = Config.fromfile(cfg_path)
    cfg8.model.backbone.dyt.bottleneck = 8
    other = MODELS.build(cfg8.model).state_dict()
    other_path = str(root / 'dyt_bottleneck8.pth')
    torch.save(dict(state_dict=other, meta=dict()), other_path)
    return dict(root=root, cfg=cfg_path, dense=dense_path, other=other_path)


def _test(tools_test, setup, ckpt, capsys):
    with pytest.raises(CheckpointError) as e:
        tools_test.main(
            [setup['cfg'], ckpt, '--work-dir',
             str(setup['root'] / 'work')])
    out = capsys.readouterr()
    assert 'accuracy/top1' not in out.out + out.err  # no metrics printed
    return str(e.value)


def test_dense_checkpoint_names_the_missing_dyt_keys(setup, tools_test,
                                                     capsys):
    msg = _test(tools_test, setup, setup['dense'], capsys)
    assert setup['dense'] in msg and 'lacks the trained DyT keys' in msg
    assert 'backbone.dyt_layers.0.dispatchers.mlp.proj.weight' in msg


def test_other_dyt_config_names_the_mismatched_keys(setup, tools_test, capsys):
    msg = _test(tools_test, setup, setup['other'], capsys)
    assert setup['other'] in msg and 'another DyT' in msg
    assert 'backbone.dyt_layers.0.adapters.mlp.down.weight (8, 64)' in msg


def test_host_runner_refuses_through_the_checkpoint_hook(setup):
    """The hosts' own tools/test.py build a plain Runner: the config's
    DyTCheckpointHook refuses the dense checkpoint before testing."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(setup['cfg'])
    cfg.work_dir = str(setup['root'] / 'host')
    cfg.load_from = setup['dense']
    runner = Runner.from_cfg(cfg)
    with pytest.raises(CheckpointError, match='lacks the trained DyT keys'):
        runner.test()


def test_init_dyt_model_refuses_dense_and_other_dyt_checkpoints(setup):
    from mmdyt.apis import init_dyt_model
    with pytest.raises(CheckpointError, match='lacks the trained DyT keys'):
        init_dyt_model(setup['cfg'], setup['dense'])
    with pytest.raises(
            CheckpointError,
            match=r'another DyT.*\(8, 64\) \(model: \(16, 64\)\)'):
        init_dyt_model(setup['cfg'], setup['other'])
