"""The contracts of a host integration are explicit abstract classes."""
import pytest
import torch

from mmdyt.models.dyt import DyTBackboneMixin, HostLayerOps


def test_host_layer_ops_needs_all_four_parts():
    assert HostLayerOps.__abstractmethods__ == {
        'norm1', 'attn', 'norm2', 'mlp'
    }

    class NoMLP(HostLayerOps):

        def norm1(self, x):
            return x

        norm2 = norm1

        def attn(self, x, key_mask=None):
            return x

    with pytest.raises(TypeError, match='mlp'):
        NoMLP()

    class Full(NoMLP):

        def mlp(self, x):
            return 2 * x

    assert Full().mlp(torch.ones(1)).item() == 2


def test_a_backbone_must_give_its_input_shape_and_flops_spec():
    assert DyTBackboneMixin.__abstractmethods__ == {
        'dyt_input_shape', 'dyt_flops_spec'
    }

    class Half(DyTBackboneMixin, torch.nn.Module):

        def dyt_input_shape(self):
            return (3, 8, 8)

    with pytest.raises(TypeError, match='dyt_flops_spec'):
        Half()

    class Whole(Half):

        def dyt_flops_spec(self, num_tokens, num_classes=0, **extra):
            return None

    assert Whole().dyt_input_shape() == (3, 8, 8)
