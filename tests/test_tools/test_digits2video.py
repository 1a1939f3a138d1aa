"""tools/dataset_converters/digits2video.py: real encoded videos that
mmaction2's own decoding pipelines read back, with both label sets."""
import os.path as osp

import numpy as np
import pytest

from demo.digits_video import render_clip
from ..conftest import load_tool


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    tool = load_tool('dataset_converters/digits2video')
    root = str(tmp_path_factory.mktemp('digits_video'))
    counts = tool.main([root, '--rawframes', '--max-per-split', '6'])
    return tool, root, counts


def _read_list(path):
    with open(path) as f:
        return [line.split() for line in f.read().splitlines()]


def _decode(pipeline, info):
    from mmaction.datasets.transforms import (DecordDecode, DecordInit,
                                              RawFrameDecode, SampleFrames)
    steps = {
        'video':
        [DecordInit(),
         SampleFrames(8, 1, 1, test_mode=True),
         DecordDecode()],
        'rawframes': [SampleFrames(8, 1, 1, test_mode=True),
                      RawFrameDecode()]
    }[pipeline]
    results = dict(
        info,
        start_index=1 if pipeline == 'rawframes' else 0,
        modality='RGB',
        filename_tmpl='img_{:05}.jpg')
    for step in steps:
        results = step(results)
    return np.stack(results['imgs'])  # (T, H, W, 3)


def test_layout_and_label_sets(converted):
    tool, root, counts = converted
    assert counts == {
        'pretrain': {
            'train': 6,
            'test': 6
        },
        'adapt': {
            'train': 6,
            'test': 6
        }
    }
    task = osp.join(root, 'adapt')
    digit = _read_list(osp.join(task, 'train_list_videos_digit.txt'))
    direction = _read_list(osp.join(task, 'train_list_videos_direction.txt'))
    assert [d[0] for d in digit] == [d[0] for d in direction]
    assert all(0 <= int(d[1]) < 5 for d in digit)
    assert all(0 <= int(d[1]) < 4 for d in direction)
    frames = _read_list(osp.join(task, 'train_list_rawframes_digit.txt'))
    assert all(f[1] == '8' for f in frames)
    assert [f[2] for f in frames] == [d[1] for d in digit]


def test_videos_and_frames_decode_through_mmaction_pipelines(converted):
    """decord (DecordInit / DecordDecode) and RawFrameDecode give back the
    rendered clip (lossy codecs: within a few grey levels on average), and
    the digit moves the way the direction label says."""
    from sklearn.datasets import load_digits
    tool, root, _ = converted
    task = osp.join(root, 'adapt')
    images = load_digits().images
    for (video, d), (frame_dir, _, _) in zip(
            _read_list(osp.join(task, 'test_list_videos_direction.txt')),
            _read_list(osp.join(task, 'test_list_rawframes_direction.txt'))):
        index = int(osp.basename(video).split('.')[0])
        decoded = _decode('video', dict(filename=osp.join(task, video)))
        raw = _decode(
            'rawframes',
            dict(frame_dir=osp.join(task, frame_dir), total_frames=8))
        assert decoded.shape == raw.shape == (8, 32, 32, 3)
        grey = decoded.astype(float).mean(-1)
        ys, xs = np.mgrid[:32, :32]
        mass = grey.sum((1, 2))
        cx, cy = (grey * xs).sum((1, 2)) / mass, (grey * ys).sum((1, 2)) / mass
        motion = {
            0: cx[-1] - cx[0],
            1: cx[0] - cx[-1],
            2: cy[-1] - cy[0],
            3: cy[0] - cy[-1]
        }[int(d)]
        assert motion > 10, (video, d, cx, cy)
        # the decoded video is the rendered clip (up to the codec)
        rendered = None
        for offset in range(17):
            clip = render_clip(images[index], int(d), offset, 32, 8)
            err = np.abs(clip.astype(float) - grey).mean()
            if rendered is None or err < rendered:
                rendered = err
        assert rendered < 6
        assert np.abs(raw.astype(float).mean(-1) - grey).mean() < 6


def test_opposite_directions_are_the_same_frames_reversed(converted):
    digit = np.random.default_rng(0).integers(0, 17, (8, 8))
    for a, b in ((0, 1), (2, 3)):
        forward = render_clip(digit, a, 5, 32, 8)
        backward = render_clip(digit, b, 5, 32, 8)
        assert np.array_equal(forward[::-1], backward)
        assert not np.array_equal(forward, backward)
