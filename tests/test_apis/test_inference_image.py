# Copyright (c) mmdyt contributors. All rights reserved.
"""mmpretrain's own inference APIs, unchanged, on a DyT model trained by a
short real run from a Pretrained base: ``get_model``,
``ImageClassificationInferencer`` and ``inference_model`` predict what
mmdyt's loader predicts (equal labels, scores and logits within 1e-5), from
the delta checkpoint and from the merged full one, and the inferencer's
accuracy over the test set is ``tools/test.py``'s top-1."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope

from mmdyt.apis import InputFileError, inference_dyt_model, init_dyt_model
from ..conftest import load_tool
from ..test_tools.dyt_runs import make_base, make_digits, write_config

N_TEST = 48


@pytest.fixture(scope='module')
def run(tmp_path_factory, tools_train):
    root = tmp_path_factory.mktemp('infer_image')
    data = make_digits(root / 'digits')
    base = make_base(root / 'base.pth')
    cfg = write_config(
        root / 'dyt.py', data, base, epochs=2, n_train=32, n_val=N_TEST)
    work = str(root / 'work')
    tools_train.main([cfg, '--work-dir', work])
    delta = osp.join(work, 'epoch_2.pth')
    assert torch.load(delta, weights_only=True)['mmdyt']['delta']
    full = str(root / 'full.pth')
    load_tool('model_converters/merge_dyt_checkpoint').main([cfg, delta, full])
    init_default_scope('mmpretrain')
    dataset = DATASETS.build(Config.fromfile(cfg).test_dataloader.dataset)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert len(infos) == N_TEST
    return dict(
        root=root,
        cfg=cfg,
        base=base,
        delta=delta,
        full=full,
        files=[i['img_path'] for i in infos],
        labels=[int(i['gt_label']) for i in infos])


@pytest.fixture(scope='module')
def reference(run):
    """mmdyt's loader and mmdyt's inference call on the delta."""
    model = init_dyt_model(run['cfg'], run['delta'])
    return dict(model=model, results=inference_dyt_model(model, run['files']))


def _batch(model, files):
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    pipeline = Compose(
        Config.fromfile(model.cfg.filename).test_dataloader.dataset.pipeline)
    data = pseudo_collate([pipeline(dict(img_path=f)) for f in files])
    return model.data_preprocessor(data, False)['inputs']


def _logits(model, inputs):
    with torch.no_grad():
        return model(inputs, mode='tensor')


@pytest.mark.parametrize('which', ['delta', 'full'])
def test_get_model_gets_the_trained_model(run, reference, which):
    from mmpretrain.apis import get_model
    host = get_model(run['cfg'], pretrained=run[which])
    ref = reference['model']
    want = ref.state_dict()
    assert set(host.state_dict()) == set(want)
    for key, value in host.state_dict().items():
        assert torch.equal(value, want[key]), key
    # independently of mmdyt's loader: the frozen ViT is the base file's
    base = torch.load(run['base'], weights_only=True)['state_dict']
    for key, value in base.items():
        assert torch.equal(host.backbone.state_dict()[key], value), key
    inputs = _batch(ref, run['files'][:8])
    torch.testing.assert_close(
        _logits(host, inputs), _logits(ref, inputs), rtol=0, atol=1e-5)


@pytest.mark.parametrize('which', ['delta', 'full'])
def test_inferencer_predicts_what_mmdyt_predicts(run, reference, which):
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(
        model=run['cfg'], pretrained=run[which])
    samples = inferencer(run['files'], return_datasamples=True)
    ref = reference['results']
    assert [int(s.pred_label) for s in samples] == \
        [r['pred_label'] for r in ref]
    torch.testing.assert_close(
        torch.stack([s.pred_score for s in samples]),
        torch.stack([torch.as_tensor(r['pred_scores']) for r in ref]),
        rtol=0,
        atol=1e-5)
    # DyT's per-sample fields ride on the data samples
    for s, r in zip(samples, ref):
        assert float(s.dyt_flops) / 1e9 == pytest.approx(r['gflops'])
        assert float(torch.as_tensor(s.dyt_rates).mean()) == pytest.approx(
            r['act_rate'])
        assert 0 < r['gflops'] < r['dense_gflops'] + 1e-12
        assert 0.0 <= r['act_rate'] <= 1.0


def test_inferencer_accuracy_equals_tools_test(run, tools_test, tmp_path):
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(
        model=run['cfg'], pretrained=run['delta'])
    preds = inferencer(run['files'])
    right = [p['pred_label'] == y for p, y in zip(preds, run['labels'])]
    metrics = tools_test.main(
        [run['cfg'], run['delta'], '--work-dir',
         str(tmp_path)])
    assert 100 * sum(right) / len(right) == pytest.approx(
        metrics['accuracy/top1'])


def test_inference_model_takes_the_mmdyt_model(run, reference):
    from mmpretrain.apis import inference_model
    out = inference_model(reference['model'], run['files'][0])
    first = reference['results'][0]
    assert out['pred_label'] == first['pred_label']
    assert out['pred_score'] == pytest.approx(first['pred_score'], abs=1e-5)


def test_bad_inputs_fail_naming_the_file(run, reference, tmp_path):
    missing = str(tmp_path / 'nope.png')
    with pytest.raises(InputFileError, match='nope.png.*does not exist'):
        inference_dyt_model(reference['model'], [run['files'][0], missing])
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG\r\n\x1a\n not really')
    with pytest.raises(InputFileError, match='broken.png'):
        inference_dyt_model(reference['model'], str(broken))


def test_dispatch_map_is_drawn(run, reference, tmp_path):
    out = inference_dyt_model(
        reference['model'], run['files'][:1], draw_dir=str(tmp_path / 'maps'))
    assert osp.getsize(out[0]['dispatch_map']) > 1000
