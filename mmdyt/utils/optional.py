# Copyright (c) mmdyt contributors. All rights reserved.
"""The one guarded import of the optional packages mmdyt can use (timm,
safetensors): imported when a feature needs them, with a clear message
when they are missing."""
import importlib
from types import ModuleType

__all__ = ['OPTIONAL_PACKAGES', 'optional_import']

#: optional package -> what needs it (for the message).
OPTIONAL_PACKAGES = {
    'timm': 'reading a Google JAX .npz ViT checkpoint (timm\'s own loader)',
    'safetensors': 'reading a .safetensors checkpoint',
}


def optional_import(name: str) -> ModuleType:
    """Import the optional module ``name`` (a package of
    :data:`OPTIONAL_PACKAGES` or one of its modules).

    Raises:
        ImportError: Naming the package, what needs it and how to install
            it, if it is missing or fails to import.
        KeyError: If ``name`` is not in an optional package.
    """
    package = name.split('.')[0]
    if package not in OPTIONAL_PACKAGES:
        raise KeyError(f'{package!r} is not an optional package of mmdyt; '
                       f'they are {sorted(OPTIONAL_PACKAGES)}')
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            f'{OPTIONAL_PACKAGES[package]} needs the optional package '
            f'{package!r}, which did not import ({err}): pip install '
            f'{package}') from err
