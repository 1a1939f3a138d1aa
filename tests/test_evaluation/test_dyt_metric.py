"""DyTEfficiencyMetric on hand-made predictions."""
import pytest
import torch

from mmdyt.evaluation import DyTEfficiencyMetric


def _sample(flops, rates, views=None, dense=None):
    s = dict(dyt_flops=flops, dyt_rates=torch.tensor(rates))
    if dense is not None:
        s['dyt_dense_flops'] = dense
    if views is not None:
        s['dyt_num_views'] = views
    return s


def test_means_per_sample_per_view_and_per_dispatcher():
    metric = DyTEfficiencyMetric()
    metric.process(None, [
        _sample(6e9, [0.5, 1.0], views=3, dense=9e9),
        _sample(4e9, [0.0, 0.5], views=1, dense=3e9)
    ])
    out = metric.compute_metrics(metric.results)
    assert out['gflops'] == pytest.approx(5.0)
    # per view: mean of 6/3 and 4/1 (not the ratio of the means, 5/2)
    assert out['gflops_per_view'] == pytest.approx((2.0 + 4.0) / 2)
    assert out['dense_gflops'] == pytest.approx(6.0)
    assert out['act_rate'] == pytest.approx(0.5)
    assert out['act_rate_l0'] == pytest.approx(0.25)
    assert out['act_rate_l1'] == pytest.approx(0.75)


def test_no_views_no_per_view_entry_and_mixed_views_refused():
    metric = DyTEfficiencyMetric(per_layer=False)
    metric.process(None, [_sample(1e9, [0.2])])
    out = metric.compute_metrics(metric.results)
    assert set(out) == {'gflops', 'act_rate'}
    metric.process(None, [_sample(1e9, [0.2], views=2)])
    with pytest.raises(ValueError, match='dyt_num_views'):
        metric.compute_metrics(metric.results)
    with pytest.raises(KeyError, match='dyt_flops'):
        metric.process(None, [{'pred_label': 1}])
