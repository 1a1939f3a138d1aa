"""mmseg's own ViT backbone test cases, run against the DyT class.

Source: mmsegmentation 1.x, ``tests/test_models/test_backbones/test_vit.py``
(``test_vit_backbone`` and ``test_vit_init``; read at commit
``bf06aceee051cf2a07cf3207475251cfbda6ff10`` of open-mmlab/mmsegmentation,
the 1.x file with ``output_cls_token``; mmseg's pip wheel ships no tests).
Every case of that file is restated here, in order, with the host class
replaced by :class:`DyTSegVisionTransformer` (DyT defaults: MLP dispatch,
adapters on): the arguments it rejects and the output shapes it promises,
``with_cp=True`` included. The one helper it imports (``check_norm_state``:
every BatchNorm in the given train state) is restated below.
"""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmdyt.models.backbones import DyTSegVisionTransformer as VisionTransformer


def check_norm_state(modules, train_state):
    return all(m.training == train_state for m in modules
               if isinstance(m, _BatchNorm))


@pytest.mark.parametrize(
    'error, build',
    [
        # pretrained must be a string path
        (TypeError, lambda: VisionTransformer().init_weights(pretrained=0)),
        # img_size must be int or tuple
        (TypeError, lambda: VisionTransformer(img_size=512.0)),
        # out_indices must be int, list or tuple
        (TypeError, lambda: VisionTransformer(out_indices=1.)),
        # resize_pos_embed needs a (1, L, C) embedding
        (TypeError, lambda: VisionTransformer.resize_pos_embed(
            torch.randn(1, 196), 512, 512, 224, 224, 'bilinear')),
        # the img_size tuple has at most 2 entries
        (AssertionError, lambda: VisionTransformer(img_size=(224, 224, 224))),
        # pretrained must be None or a str
        (TypeError, lambda: VisionTransformer(pretrained=123)),
        # output_cls_token needs with_cls_token
        (AssertionError, lambda: VisionTransformer(
            with_cls_token=False, output_cls_token=True)),
    ])
def test_vit_backbone_rejects(error, build):
    with pytest.raises(error):
        build()


def test_vit_backbone():
    imgs = torch.randn(1, 3, 224, 224)
    model = VisionTransformer(img_size=(224, ))
    model.init_weights()
    model(imgs)
    model = VisionTransformer(img_size=(224, 224))
    model(imgs)

    model = VisionTransformer(norm_eval=True)
    model.train()

    model = VisionTransformer()
    model.init_weights()
    model.train()
    assert check_norm_state(model.modules(), True)
    for size, grid in [((224, 224), (14, 14)), ((256, 256), (16, 16)),
                       ((32, 32), (2, 2)), ((224, 224), (14, 14)),
                       ((112, 224), (7, 14)), ((234, 345), (15, 22))]:
        feat = model(torch.randn(1, 3, *size))
        assert feat[-1].shape == (1, 768, *grid)


@pytest.mark.parametrize('kwargs', [
    dict(with_cp=True),
    dict(with_cls_token=False),
    dict(final_norm=True),
    dict(patch_norm=True),
])
def test_vit_backbone_options(kwargs, monkeypatch):
    import mmdyt.models.dyt.mixin as mixin
    calls, real = [], mixin.checkpointed_layer
    monkeypatch.setattr(mixin, 'checkpointed_layer',
                        lambda *a: calls.append(1) or real(*a))
    model = VisionTransformer(**kwargs)
    feat = model(torch.randn(1, 3, 224, 224))
    assert feat[-1].shape == (1, 768, 14, 14)
    # not in mmseg's file: with_cp checkpoints every layer under DyT
    assert len(calls) == (12 if kwargs.get('with_cp') else 0)


def test_vit_backbone_output_cls_token():
    model = VisionTransformer(with_cls_token=True, output_cls_token=True)
    feat = model(torch.randn(1, 3, 224, 224))
    assert feat[0][0].shape == (1, 768, 14, 14)
    assert feat[0][1].shape == (1, 768)


def test_vit_init():
    path = 'PATH_THAT_DO_NOT_EXIST'
    model = VisionTransformer(pretrained=None, init_cfg=None)
    assert model.init_cfg is None
    model.init_weights()

    model = VisionTransformer(
        pretrained=None, init_cfg=dict(type='Pretrained', checkpoint=path))
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    with pytest.raises(OSError):
        model.init_weights()

    model = VisionTransformer(pretrained=None, init_cfg=123)
    with pytest.raises(TypeError):
        model.init_weights()

    model = VisionTransformer(pretrained=path, init_cfg=None)
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    with pytest.raises(OSError):
        model.init_weights()

    with pytest.raises(AssertionError):
        VisionTransformer(
            pretrained=path, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(AssertionError):
        VisionTransformer(pretrained=path, init_cfg=123)
    with pytest.raises(TypeError):
        VisionTransformer(pretrained=123, init_cfg=None)
    with pytest.raises(AssertionError):
        VisionTransformer(
            pretrained=123, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(AssertionError):
        VisionTransformer(pretrained=123, init_cfg=123)
