# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/dist_*.sh and tools/slurm_*.sh: syntax and the command lines they run.

Here ``PYTHON`` and ``srun`` are stand-ins that record their arguments (no
torch start-up, milliseconds); test_dist.py runs the scripts for real (gloo).
"""
import glob
import json
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TOOLS = osp.join(REPO_ROOT, 'tools')
RECORD = ('#!{py}\nimport json, sys\n'
          'print(json.dumps([{name!r}] + sys.argv[1:]))\n')


def _stub(tmp_path, name):
    path = tmp_path / name
    path.write_text(RECORD.format(py=sys.executable, name=name))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _run(script, args, env):
    out = subprocess.run(['bash', osp.join(TOOLS, script), *args],
                         env={
                             **os.environ,
                             **env
                         },
                         capture_output=True,
                         text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    'script',
    sorted(osp.basename(p) for p in glob.glob(osp.join(TOOLS, '*.sh'))))
def test_shell_syntax(script):
    subprocess.run(['bash', '-n', osp.join(TOOLS, script)], check=True)


def test_dist_train_runs_torchrun_with_pytorch_launcher(tmp_path):
    py = _stub(tmp_path, 'python')
    argv = _run('dist_train.sh', ['cfg.py', '2', '--work-dir', 'wd', '--amp'],
                dict(PYTHON=py, PORT='29123', NNODES='1'))
    assert argv[:3] == ['python', '-m', 'torch.distributed.run']
    assert '--nproc_per_node=2' in argv and '--master_port=29123' in argv
    i = argv.index(osp.join(TOOLS, 'train.py'))
    assert argv[i + 1:] == [
        'cfg.py', '--launcher', 'pytorch', '--work-dir', 'wd', '--amp'
    ]


def test_dist_test_runs_torchrun_with_pytorch_launcher(tmp_path):
    py = _stub(tmp_path, 'python')
    argv = _run('dist_test.sh', ['cfg.py', 'ckpt.pth', '4', '--out', 'r.pkl'],
                dict(PYTHON=py))
    assert '--nproc_per_node=4' in argv
    i = argv.index(osp.join(TOOLS, 'test.py'))
    assert argv[i + 1:] == [
        'cfg.py', 'ckpt.pth', '--launcher', 'pytorch', '--out', 'r.pkl'
    ]


def test_slurm_train_runs_srun_with_slurm_launcher(tmp_path):
    _stub(tmp_path, 'srun')
    env = dict(
        PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='2', PYTHON='mypython')
    argv = _run('slurm_train.sh', ['part', 'job', 'cfg.py', 'wd', '--resume'],
                env)
    assert argv[:3] == ['srun', '-p', 'part']
    assert '--ntasks=2' in argv and '--gres=gpu:2' in argv
    i = argv.index('mypython')
    assert argv[i + 1:] == [
        '-u',
        osp.join(TOOLS, 'train.py'), 'cfg.py', '--work-dir', 'wd',
        '--launcher=slurm', '--resume'
    ]


def test_slurm_test_runs_srun_with_slurm_launcher(tmp_path):
    _stub(tmp_path, 'srun')
    env = dict(PATH=f'{tmp_path}:{os.environ["PATH"]}', PYTHON='mypython')
    argv = _run('slurm_test.sh', ['part', 'job', 'cfg.py', 'c.pth'], env)
    assert '--ntasks=8' in argv
    i = argv.index('mypython')
    assert argv[i + 1:] == [
        '-u',
        osp.join(TOOLS, 'test.py'), 'cfg.py', 'c.pth', '--launcher=slurm'
    ]


def test_slurm_without_gres_for_cpu_partitions(tmp_path):
    _stub(tmp_path, 'srun')
    env = dict(
        PATH=f'{tmp_path}:{os.environ["PATH"]}',
        GPUS='4',
        PYTHON='mypython',
        GRES='')
    argv = _run('slurm_train.sh', ['part', 'job', 'cfg.py'], env)
    assert not any(a.startswith('--gres') for a in argv)
    assert '--ntasks=4' in argv
