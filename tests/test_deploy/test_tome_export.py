# Copyright (c) mmdyt contributors. All rights reserved.
"""ONNX export of DyT + token merging (``model.backbone.tome``): ONNX
Runtime against PyTorch's gathered path on the same merges and masks (tiny
models with random host weights and non-zero adapters, CPU)."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from mmdyt.apis.model import init_dyt_model
from mmdyt.deploy import (check_skipping_graph, default_topk_rate,
                          example_input, export_onnx, graph_summary,
                          ort_session, pytorch_output, run_session)
from mmdyt.models.dyt.merge import bipartite_soft_matching, merge_tokens
from ..conftest import load_tool
from .test_export import (VIT_CFG, _rates, randomise_, seg_cfg, video_cfg,
                          vit_cfg)

# onnx and onnxruntime are optional (requirements/deploy.txt)
pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

CFGS = dict(vit=vit_cfg, video=video_cfg, seg=seg_cfg)


def build(task, tome):
    """The task's tiny model with ``backbone.tome=tome``, randomised as in
    ``test_export`` (same host weights and adapters for any ``tome``).

    The classifier gets a third layer: it reads the CLS token, which the
    last layer's merging cannot change, so with two layers no merge of
    already merged tokens (sizes > 1) would reach its output."""
    cfg = CFGS[task]()
    if task == 'vit':
        cfg.model.backbone.arch.num_layers = 3
    cfg.model.backbone.tome = tome
    torch.manual_seed(0)
    return randomise_(init_dyt_model(cfg))


@pytest.fixture(scope='module')
def models():
    cache = {}

    def get(task, r=3, prop_attn=True):
        key = (task, r, prop_attn)
        if key not in cache:
            cache[key] = build(task, dict(r=r, prop_attn=prop_attn))
        return cache[key]

    return get


def tokens_per_layer(model):
    """Tokens every dispatcher saw in the last pass."""
    return [m['mlp'].shape[1] for m in model.backbone.dyt_masks]


def check_against_pytorch(model, path, mode, rate, runs):
    """ORT output == PyTorch's on every ``(batch, seed)``; returns the
    largest difference and the dispatch rates seen."""
    session = ort_session(path, threads=1)
    worst, rates = 0.0, []
    for batch, seed in runs:
        x = example_input(model, batch, seed)
        ref = pytorch_output(model, x, mode, rate, keep_masks=True).numpy()
        rates.append(_rates(model))
        out = run_session(session, x)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
        # same labels (class, or class of every pixel)
        assert np.array_equal(out.argmax(1), ref.argmax(1))
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst, rates


# tokens every dispatcher scores at r=3: image classifier (17 tokens, 3
# layers), per-frame video (17 tokens per frame, 2 layers, a head on all
# tokens), seg backbone (17 tokens, 4 layers, outputs unmerged)
MERGED = dict(vit=[14, 11, 8], video=[14, 11], seg=[14, 11, 8, 5])


@pytest.mark.parametrize('mode', ['gather', 'topk'])
@pytest.mark.parametrize('task', list(CFGS))
def test_tome_export_matches_pytorch(task, mode, models, tmp_path):
    model = models(task)
    rate = 0.4 if mode == 'topk' else None
    path = str(tmp_path / f'{task}_{mode}.onnx')
    info = export_onnx(model, path, mode, rate, example_input(model, 2))
    assert info['tome'] == dict(
        r=3,
        prop_attn=True,
        schedule=[3] * len(MERGED[task]),
        tokens=[17] + MERGED[task])
    ops = graph_summary(path)
    # the proportional bias log(s) of every layer after the first
    assert ops['Log'] == len(MERGED[task]) - 1
    assert ('NonZero' in ops) == (mode == 'gather')
    # batches 1 and 3 from one file (dynamic batch), then a batch of two
    # different samples
    runs = [(1, 1), (3, 2), (2, 5)]
    worst, rates = check_against_pytorch(model, path, mode, rate, runs)
    # merging shrank the tokens in every layer, per sample differently
    batch = 6 if task == 'video' else 2  # 3 frames a clip
    assert tokens_per_layer(model) == MERGED[task]
    source = model.backbone._dyt_merger.source
    assert source.shape[0] == batch and not torch.equal(source[0], source[1])
    # the dispatch varied (not all / none of the tokens)
    assert any(0.05 < r < 0.95 for rr in rates for r in rr), rates
    if mode == 'gather':
        # every MLP runs on the gathered active merged tokens only
        report = check_skipping_graph(path, model, example_input(model, 3, 5))
        frames = 3 if task == 'video' else 1
        assert [e['tokens'] for e in report] == \
            [3 * frames * n for n in MERGED[task]]
        assert all(e['rows'] == e['active'] < e['tokens'] for e in report)
    print(f'{task} {mode}: max |ORT - PyTorch| {worst:.2e}')


# r=8: every A token merged in layer 0, then capped at half; r=3 without
# proportional attention: no log(s) bias; per-layer r, layer 0 merges none
@pytest.mark.parametrize('r, prop_attn, tokens, biased', [
    (8, True, [9, 5, 3], 2),
    (3, False, [14, 11, 8], 0),
    ((0, 5, 2), True, [17, 12, 10], 1),
])
def test_tome_export_schedules(r, prop_attn, tokens, biased, models, tmp_path):
    model = models('vit', r, prop_attn)
    path = str(tmp_path / 'vit.onnx')
    export_onnx(model, path, 'gather', inputs=example_input(model, 2))
    # one log(s) per layer that attends over merged tokens
    assert graph_summary(path).get('Log', 0) == biased
    check_against_pytorch(model, path, 'gather', None, [(1, 3), (2, 4)])
    assert tokens_per_layer(model) == tokens


def test_r0_exports_the_graph_without_tome(tmp_path):
    plain, zero = build('vit', None), build('vit', dict(r=0))
    x = example_input(plain, 3, 6)
    outs, graphs = [], []
    for name, model in (('plain', plain), ('zero', zero)):
        path = str(tmp_path / f'{name}.onnx')
        info = export_onnx(model, path, 'gather', inputs=example_input(model))
        assert info['tome'] is None
        graphs.append(graph_summary(path))
        outs.append(run_session(ort_session(path, threads=1), x))
    assert graphs[0] == graphs[1] and 'TopK' not in graphs[0]
    assert np.array_equal(outs[0], outs[1])
    np.testing.assert_allclose(
        outs[0], pytorch_output(plain, x).numpy(), rtol=0, atol=1e-5)
    # and ToMe does change the result (the comparison above can fail)
    merged = build('vit', dict(r=3))
    assert not np.allclose(
        pytorch_output(merged, x).numpy(), outs[0], atol=1e-3)


class Matching(nn.Module):
    """Bipartite matching and merging alone, as a graph."""

    def __init__(self, r, prefix):
        super().__init__()
        self.r, self.prefix = r, prefix

    def forward(self, metric, x, size):
        new_pos = bipartite_soft_matching(metric, self.r, self.prefix)
        merged, new_size = merge_tokens(x, size, new_pos, x.shape[1] - self.r)
        return new_pos, merged, new_size


def test_matching_graph_breaks_ties_as_the_stable_sort(tmp_path):
    """Exact ties (one-hot metrics: cosines of exactly 1 and 0) are broken
    by the lower index in ONNX TopK as in the eager stable sort."""
    # CLS + 10 tokens; A = 1, 3, 5, 7, 9; B = 2, 4, 6, 8, 10
    eye = torch.eye(5)
    metric = torch.stack([
        eye[[0, 1, 1, 2, 2, 3, 1, 2, 3, 1, 0]],
        eye[[0, 1, 1, 2, 3, 1, 2, 2, 3, 4, 0]],
    ])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 11, 6, generator=g)
    size = torch.randint(1, 4, (2, 11, 1), generator=g).float()
    for r in (1, 2, 4, 5):
        path = str(tmp_path / f'match{r}.onnx')
        module = Matching(r, 1)
        torch.onnx.export(
            module, (metric, x, size),
            path,
            input_names=['metric', 'x', 'size'],
            dynamic_axes={n: {
                0: 'batch'
            }
                          for n in ('metric', 'x', 'size')},
            opset_version=17,
            dynamo=False)
        session = ort_session(path, threads=1)
        outs = session.run(
            None, dict(metric=metric.numpy(), x=x.numpy(), size=size.numpy()))
        refs = module(metric, x, size)  # eager: the stable sort
        assert np.array_equal(outs[0], refs[0].numpy()), r
        np.testing.assert_allclose(outs[1], refs[1].numpy(), atol=1e-6)
        assert np.array_equal(outs[2], refs[2].numpy())
    # the case has ties that matter: equal best edges (sample 0: all five
    # A tokens at cosine 1; sample 1: four, the fifth at 0 to every B token)
    scores = metric[:, 1::2] @ metric[:, 2::2].transpose(1, 2)
    assert (scores.max(-1).values == 1).sum(1).tolist() == [5, 4]


def test_traceable_matching_equals_the_eager_one():
    """The export variant of matching and merging, run eagerly, equals the
    eager code bit for bit (random metrics, odd and even token counts, 0-2
    prefix tokens, every r)."""
    g = torch.Generator().manual_seed(0)
    for N in (5, 8, 11, 17):
        for P in (0, 1, 2):
            for r in range((N - P) // 2 + 1):
                metric = torch.randn(3, N, 5, generator=g)
                x = torch.randn(3, N, 4, generator=g)
                size = torch.randint(1, 5, (3, N, 1), generator=g).float()
                pos = bipartite_soft_matching(metric, r, P)
                assert torch.equal(
                    pos, bipartite_soft_matching(metric, r, P, traceable=True))
                for s in (None, size):
                    for a, b in zip(
                            merge_tokens(x, s, pos, N - r),
                            merge_tokens(x, s, pos, N - r, traceable=True)):
                        assert torch.equal(a, b)


def test_topk_default_rate_counts_merged_tokens(models):
    model = models('vit')
    x = example_input(model, 4, 9)
    rate, source = default_topk_rate(model, {'meta': {}}, x)
    assert source.startswith('measured')
    # by hand: per dispatcher, active / merged non-prefix tokens
    pytorch_output(model, x, keep_masks=True)
    assert tokens_per_layer(model) == MERGED['vit']
    assert rate == pytest.approx(np.mean(_rates(model)), abs=1e-6)


def test_tome_dynamo_export_matches_pytorch(models, tmp_path):
    model = models('vit')
    path = str(tmp_path / 'dynamo.onnx')
    info = export_onnx(
        model,
        path,
        'gather',
        inputs=example_input(model, 2),
        exporter='dynamo')
    assert info['tome']['tokens'] == [17] + MERGED['vit']
    check_against_pytorch(model, path, 'gather', None, [(1, 1), (3, 2)])
    assert tokens_per_layer(model) == MERGED['vit']


def test_export_tool_prints_the_merge_schedule(tmp_path, capsys):
    tool = load_tool('deployment/export_onnx')
    report = tool.main([
        VIT_CFG, 'none',
        str(tmp_path / 'm.onnx'), '--mode', 'topk', '--rate', '0.5',
        '--verify', '--cfg-options', 'model.backbone.init_cfg=None',
        'model.backbone.tome.r=3'
    ])
    out = capsys.readouterr().out
    assert ('token merging (model.backbone.tome r=3, prop_attn=True) in '
            'the graph: tokens 17 -> 14 -> 11') in out
    assert report['tome']['schedule'] == [3, 3]
    assert report['verify']['max_abs_diff'] < 1e-5


def test_tome_export_of_the_seg_backbone_without_cls_token(tmp_path):
    """No prefix token: every token may be merged (``P = 0``)."""
    cfg = seg_cfg()
    cfg.model.backbone.update(with_cls_token=False, tome=dict(r=3))
    torch.manual_seed(0)
    model = randomise_(init_dyt_model(cfg))
    assert model.backbone.num_prefix_tokens == 0
    path = str(tmp_path / 'seg.onnx')
    info = export_onnx(model, path, 'gather', inputs=example_input(model, 2))
    assert info['tome']['tokens'] == [16, 13, 10, 7, 4]
    check_against_pytorch(model, path, 'gather', None, [(1, 1), (3, 2)])
    assert tokens_per_layer(model) == [13, 10, 7, 4]


def test_onnxruntime_benchmark_of_a_tome_model(tmp_path, capsys):
    """``benchmark.py --backend onnxruntime`` exports the merging backbone
    (ORT equals PyTorch) and counts the merged tokens' FLOPs (no timing
    is asserted)."""
    tool = load_tool('analysis_tools/benchmark')
    base = [
        VIT_CFG, '--rate', '0.5', '--backend', 'onnxruntime', '--batch-size',
        '2', '--repeats', '1', '--warmup', '0', '--onnx-dir',
        str(tmp_path), '--cfg-options', 'model.backbone.init_cfg=None'
    ]
    plain = tool.main(base)
    merged = tool.main(base + ['model.backbone.tome.r=3'])
    capsys.readouterr()
    assert merged['onnx_max_abs_diff'] < 1e-5
    # same dense reference, fewer FLOPs with 17 -> 14 -> 11 tokens
    assert merged['gflops_dense'] == plain['gflops_dense']
    assert merged['gflops'] < plain['gflops']
