"""Optional packages behind extras (h5py, onnx): imported on first use, or a MissingExtraError naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str, feature: str) -> ModuleType:
    """The module `module`, imported; if it is missing, a MissingExtraError saying that `feature`
    needs it and that `pip install 'polynn[extra]'` installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(feature, module.partition(".")[0], extra, error) from None
