"""mmdyt.models imports at module level: the layering is visible at the top
of every file (no optional package and no import cycle needs a local one)."""
import ast
from pathlib import Path

import mmdyt.models

MODELS_DIR = Path(mmdyt.models.__file__).resolve().parent
#: the scopes an import must not stand in.
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def local_imports(path: Path):
    """``(line, text)`` of every import inside a function or class."""
    tree = ast.parse(path.read_text(), str(path))
    for scope in ast.walk(tree):
        if isinstance(scope, SCOPES):
            for node in ast.walk(scope):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node.lineno, ast.unparse(node)


def test_no_function_local_imports_in_models(tmp_path):
    found = [
        f'{p.relative_to(MODELS_DIR)}:{line} {text}'
        for p in sorted(MODELS_DIR.rglob('*.py'))
        for line, text in local_imports(p)
    ]
    assert not found, 'import at module level: ' + ', '.join(found)
    probe = tmp_path / 'probe.py'
    probe.write_text('import os\n\ndef f():\n    import copy\n    return 1\n')
    assert [t for _, t in local_imports(probe)] == ['import copy']
