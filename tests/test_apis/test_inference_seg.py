# Copyright (c) mmdyt contributors. All rights reserved.
"""mmseg's own inference APIs, unchanged, on a DyT segmentor trained by a
short real run from a Pretrained base (a stock mmseg config with DyT
swapped in): ``init_model`` + ``inference_model`` and ``MMSegInferencer``
predict what mmdyt's loader predicts, from the delta and the merged full
checkpoint (equal label maps, logits within 1e-5)."""
import glob
import os.path as osp

import pytest
import torch

from mmdyt.apis import inference_dyt_model, init_dyt_model
from ..conftest import load_tool
from ..test_tools.test_host_tools import HOOK, SEG_DYT_CFG, _seg_base


@pytest.fixture(scope='module')
def run(tmp_path_factory, tools_train, ade20k_root):
    root = tmp_path_factory.mktemp('infer_seg')
    base = _seg_base(root / 'seg_base.pth')
    cfg = root / 'dyt_seg.py'
    loaders = ''.join(
        f'{split}_dataloader = dict(dataset=dict(data_root={ade20k_root!r}))\n'
        for split in ('train', 'val', 'test'))
    cfg.write_text(f'_base_ = [{SEG_DYT_CFG!r}]\n'
                   'model = dict(backbone=dict(init_cfg=dict(\n'
                   f"    type='Pretrained', checkpoint={base!r})))\n"
                   'train_cfg = dict(max_iters=2, val_interval=2)\n' +
                   loaders + HOOK)
    work = str(root / 'work')
    tools_train.main([str(cfg), '--work-dir', work])
    delta = osp.join(work, 'iter_2.pth')
    assert torch.load(delta, weights_only=True)['mmdyt']['delta']
    full = str(root / 'full.pth')
    load_tool('model_converters/merge_dyt_checkpoint').main(
        [str(cfg), delta, full])
    files = sorted(
        glob.glob(osp.join(ade20k_root, 'images', 'validation', '*.jpg')))
    assert files
    return dict(cfg=str(cfg), base=base, delta=delta, full=full, files=files)


@pytest.fixture(scope='module')
def reference(run):
    from mmseg.apis import inference_model
    model = init_dyt_model(run['cfg'], run['delta'])
    return dict(
        model=model, samples=[inference_model(model, f) for f in run['files']])


def _assert_same(samples, ref):
    assert len(samples) == len(ref)
    for s, r in zip(samples, ref):
        assert torch.equal(s.pred_sem_seg.data, r.pred_sem_seg.data)
        torch.testing.assert_close(
            s.seg_logits.data, r.seg_logits.data, rtol=0, atol=1e-5)
        assert float(s.dyt_flops) == pytest.approx(float(r.dyt_flops))


@pytest.mark.parametrize('which', ['delta', 'full'])
def test_init_model_and_inference_model(run, reference, which):
    from mmseg.apis import inference_model, init_model
    host = init_model(run['cfg'], run[which], device='cpu')
    want = reference['model'].state_dict()
    assert set(host.state_dict()) == set(want)
    for key, value in host.state_dict().items():
        assert torch.equal(value, want[key]), key
    # independently of mmdyt's loader: the frozen ViT is the base file's
    base = torch.load(run['base'], weights_only=True)['state_dict']
    for key, value in base.items():
        assert torch.equal(host.backbone.state_dict()[key], value), key
    _assert_same([inference_model(host, f) for f in run['files']],
                 reference['samples'])


@pytest.mark.parametrize('which', ['delta', 'full'])
def test_mmseg_inferencer(run, reference, which):
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(
        model=run['cfg'], weights=run[which], device='cpu')
    out = inferencer(run['files'], return_datasamples=True)
    samples = out['predictions'] if isinstance(out, dict) else out
    samples = samples if isinstance(samples, list) else [samples]
    _assert_same(samples, reference['samples'])


def test_mmdyt_inference_on_files(run, reference, tmp_path):
    results = inference_dyt_model(
        reference['model'], run['files'], draw_dir=str(tmp_path))
    for res, ref in zip(results, reference['samples']):
        assert (res['pred_sem_seg'] == ref.pred_sem_seg.data[0].numpy()).all()
        assert res['gflops'] == pytest.approx(float(ref.dyt_flops) / 1e9)
        assert 0.0 <= res['act_rate'] <= 1.0
        assert osp.getsize(res['dispatch_map']) > 1000
