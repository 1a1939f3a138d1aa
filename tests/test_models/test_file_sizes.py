"""Every file of mmdyt.models stays readable: at most 450 lines."""
from pathlib import Path

import mmdyt.models

MODELS_DIR = Path(mmdyt.models.__file__).resolve().parent
MAX_LINES = 450


def test_no_models_file_over_450_lines():
    long = {
        str(p.relative_to(MODELS_DIR)): n
        for p in sorted(MODELS_DIR.rglob('*.py'))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f'split these files (over {MAX_LINES} lines): {long}'
