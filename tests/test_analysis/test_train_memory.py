"""Training-step memory: the tensor-level tracker against a hand-computed
sequence and against torch's own MemTracker; the settings' ordering on a
tiny ViT; the tool in-process."""
import pytest
import torch

from mmdyt.analysis.train_memory import (SETTINGS, TensorMemoryTracker,
                                         build_vit_classifier, format_table,
                                         measure_training_step,
                                         measure_vit_settings)
from ..conftest import load_tool

TINY = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=256)


def test_tracker_hand_computed_sequence():
    tracker = TensorMemoryTracker()
    w = torch.randn(100)  # 400 B, there before
    tracker.add_static([w])
    with tracker:
        tracker.phase = 'forward'
        a = torch.empty(1000)  # +4000
        b = torch.zeros(2000)  # +8000
        view = b[:10]  # a view: no new storage
        b.add_(1)  # in place: none either
        w.mul_(2)  # a static storage, counted once
        del a  # -4000
        tracker.phase = 'backward'
        c = torch.ones(500)  # +2000
    assert tracker.peak == 400 + 12000
    assert tracker.peak_by_phase == dict(
        static=400, forward=12000, backward=0, optimizer=0)
    assert tracker.current == 400 + 8000 + 2000
    del b, view, c
    assert tracker.current == 400


def _mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64),
        torch.nn.LayerNorm(64))
    return model, torch.optim.AdamW(model.parameters())


def test_peak_equals_torch_memtracker():
    """torch's MemTracker (torch.distributed._tools, module hooks + its own
    storage accounting) as the independent reference: same step, same
    peak to the byte."""
    mem_tracker = pytest.importorskip('torch.distributed._tools.mem_tracker')
    x = torch.randn(32, 64)
    model, optim = _mlp()
    ours = measure_training_step(
        'mlp', model, optim, lambda: model(x).square().sum(), [x], timed=False)
    model, optim = _mlp()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optim.step()
    optim.zero_grad(set_to_none=True)
    ref = mem_tracker.MemTracker()
    ref.track_external(model, optim, x)
    with ref:
        loss = model(x).square().sum()
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        del loss
    peak = ref.get_tracker_snapshot('peak')[torch.device('cpu')]['Total']
    assert ours.peak == peak
    params = sum(p.numel() * 4 for p in model.parameters())
    assert ours.params == params and ours.trainable_params == params
    # AdamW: exp_avg and exp_avg_sq per parameter, plus the step counters
    assert 2 * params <= ours.optimizer_state <= 2 * params + 64


def test_settings_order_on_a_tiny_vit():
    rows = {
        r.setting: r
        for r in measure_vit_settings(
            arch=TINY,
            img_size=32,
            patch_size=4,
            batch_size=2,
            num_classes=10,
            timed=False,
            dyt=dict(bottleneck=8))
    }
    assert set(rows) == set(SETTINGS)
    assert rows['linear'].peak < rows['dyt_cp'].peak < rows['dyt'].peak \
        < rows['full'].peak
    assert rows['full_cp'].peak <= rows['full'].peak
    assert rows['dyt_cp'].activations_at_peak < \
        rows['dyt'].activations_at_peak
    assert rows['dyt'].trainable_params < 0.1 * rows['full'].params
    assert rows['full'].optimizer_state >= 2 * rows['full'].params - 1024
    table = format_table(list(rows.values()))
    assert table.count('\n') == 1 + len(SETTINGS) and '| 1.00 |' in table


def test_builder_rejects_unknown_method_and_wraps_full_cp():
    with pytest.raises(ValueError, match="'full', 'linear', 'dyt'"):
        build_vit_classifier('lora')
    model = build_vit_classifier('full', with_cp=True, arch=TINY, img_size=32)
    assert all(
        type(m).__name__ == '_CheckpointedLayer'
        for m in model.backbone.layers)
    with pytest.raises(ValueError, match='allowed'):
        measure_vit_settings(['full', 'adapter'])


def test_tool_in_process(tmp_path):
    tool = load_tool('analysis_tools/benchmark_train')
    out = tmp_path / 'rows.json'
    rows = tool.main([
        '--arch', 'deit-tiny', '--img-size', '32', '--patch-size', '16',
        '--batch-size', '2', '--settings', 'dyt', 'dyt_cp', '--no-time',
        '--out',
        str(out)
    ])
    assert [r['setting'] for r in rows] == ['dyt', 'dyt_cp']
    assert rows[1]['peak'] < rows[0]['peak'] and out.exists()
