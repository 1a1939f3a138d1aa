# Copyright (c) mmdyt contributors. All rights reserved.
"""The offline demo: adapt a frozen pre-trained ViT with DyT on real data.

    python tools/demo.py [--task image] [--work-dir DIR] [--seeds 0 1 2]
        [--epochs N] [--threads N] [--verbose] [task options]

``--task image`` (default): a tiny ViT pre-trained on scikit-learn's real
handwritten digits 0-4, adapted to digits 5-9 with DyT, full tuning and a
linear probe; a table of mean ± std over the seeds (see
``demo/image.py``; ``--help`` lists the task's options).
``--task video``: the same on moving digits with mmaction2
(``demo/video.py``). ``--task budget``: one DyT checkpoint
retargeted to other activation rates against checkpoints trained at them,
and its rate sweep (``demo/budget.py``). The
stages, progress bars, seeds and tables live in ``demo/session.py``.
``main(argv)`` runs in-process and returns the results dict.
"""
import os.path as osp
import sys

# demo/ is a top-level package of the repository, not installed with mmdyt
# (first on the path: tools/demo.py would shadow it).
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from demo.session import main  # noqa: E402

if __name__ == '__main__':
    main()
