"""Dataset converters: SVHN's official .mat (written by scipy, the format's
producer) -> ImageFolder read by mmpretrain's CustomDataset; VTAB-1K lists
completed and checked; the demo's digits in the VTAB-1K layout."""
import os
import os.path as osp

import numpy as np
import pytest

from ..conftest import load_tool


def test_svhn_mat_to_folders_read_by_custom_dataset(tmp_path):
    from scipy.io import savemat
    rng = np.random.default_rng(0)
    n = 12
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = np.array([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3]).reshape(n, 1)
    mat = tmp_path / 'train_32x32.mat'
    savemat(str(mat), dict(X=x, y=y))  # SVHN format 2: X 32x32x3xN, y Nx1

    out = tmp_path / 'svhn' / 'train'
    counts = load_tool('dataset_converters/svhn2folder').main(
        [str(mat), str(out)])
    assert counts[0] == 2 and counts[3] == 2 and sum(counts.values()) == n

    from mmengine.registry import init_default_scope
    from mmpretrain.datasets import CustomDataset
    from PIL import Image
    init_default_scope('mmpretrain')
    ds = CustomDataset(
        data_root=str(tmp_path / 'svhn'), data_prefix='train', pipeline=[])
    assert len(ds) == n
    expected = {i: int(label) % 10 for i, label in enumerate(y.ravel())}
    for info in ds:
        index = int(osp.splitext(osp.basename(info['img_path']))[0])
        assert info['gt_label'] == expected[index]  # label 10 -> digit 0
        with Image.open(info['img_path']) as img:
            np.testing.assert_array_equal(np.asarray(img), x[..., index])


def test_svhn_rejects_a_non_svhn_mat(tmp_path):
    from scipy.io import savemat
    savemat(str(tmp_path / 'bad.mat'), dict(images=np.zeros((2, 2))))
    with pytest.raises(ValueError, match='expected the SVHN keys X and y'):
        load_tool('dataset_converters/svhn2folder').main(
            [str(tmp_path / 'bad.mat'),
             str(tmp_path / 'out')])


def _task(root, n_train=4, n_val=2, n_test=3):
    os.makedirs(root / 'images')
    lists = {}
    for name, count in (('train800.txt', n_train), ('val200.txt', n_val),
                        ('test.txt', n_test)):
        lines = []
        for i in range(count):
            rel = f'images/{name[:-4]}_{i}.jpg'
            (root / rel).write_bytes(b'x')
            lines.append(f'{rel} {i % 2}')
        (root / name).write_text('\n'.join(lines) + '\n')
        lists[name] = lines
    return lists


def test_vtab1k_lists_writes_the_union_and_checks(tmp_path):
    tool = load_tool('dataset_converters/vtab1k_lists')
    task = tmp_path / 'vtab-1k' / 'cifar'
    lists = _task(task)
    result = tool.main([str(task)])[str(task)]
    combined = (task / 'train800val200.txt').read_text().splitlines()
    assert combined == lists['train800.txt'] + lists['val200.txt']
    assert result['train800val200.txt'] == dict(num_images=6, num_classes=2)
    assert result['test.txt']['num_images'] == 3
    # an existing combined list is kept as it is
    (task / 'train800val200.txt').write_text(lists['train800.txt'][0] + '\n')
    assert tool.main([str(task)
                      ])[str(task)]['train800val200.txt']['num_images'] == 1
    # --all finds every task; a missing image is named
    other = tmp_path / 'vtab-1k' / 'dtd'
    _task(other)
    os.remove(other / 'images' / 'test_1.jpg')
    with pytest.raises(SystemExit) as info:
        tool.main([str(tmp_path / 'vtab-1k'), '--all'])
    assert 'images/test_1.jpg' in str(info.value.code)
    assert str(other) in str(info.value.code)


def test_vtab1k_lists_malformed_line(tmp_path):
    task = tmp_path / 'kitti'
    _task(task)
    (task / 'test.txt').write_text('images/a.jpg car\n')
    with pytest.raises(SystemExit, match='expected "path label"'):
        load_tool('dataset_converters/vtab1k_lists').main([str(task)])


def test_digits2vtab_rotations_and_labels(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits
    counts = load_tool('dataset_converters/digits2vtab').main(
        [str(tmp_path), '--size', '16'])
    digits = load_digits()
    n_low = int((digits.target < 5).sum())
    n_high = int((digits.target >= 5).sum())
    assert sum(counts['pretrain'].values()) == 4 * n_low
    assert sum(counts['adapt'].values()) == n_high
    lines = (tmp_path / 'pretrain' /
             'train800val200.txt').read_text().split('\n')
    rel, label = lines[0].split()
    index = int(osp.basename(rel)[:4])
    k = int(rel.split('_r')[1][:-4]) // 90
    assert int(label) == 4 * digits.target[index] + k
    # the image is the digit rotated by k * 90 degrees, upscaled
    rel3, label3 = lines[3].split()
    assert rel3.endswith('_r270.png') and int(label3) == int(label) + 3
    with Image.open(tmp_path / 'pretrain' / rel3) as img:
        small = np.asarray(img.convert('L').resize((8, 8), Image.BOX), float)
    ref = np.rot90(digits.images[index], 3) * 255 / 16
    assert np.corrcoef(small.ravel(), ref.ravel())[0, 1] > 0.9
    adapt = (tmp_path / 'adapt' / 'test.txt').read_text().split()
    assert {int(v) for v in adapt[1::2]} == {0, 1, 2, 3, 4}
    # train and test splits of a task are disjoint
    train = (tmp_path / 'adapt' / 'train800val200.txt').read_text().split()
    assert not set(train[0::2]) & set(adapt[0::2])
