"""Loading a model file of either format, told by content: polynn's safetensors, or Keras 3's .keras / .weights.h5."""

from __future__ import annotations

import os
from typing import Any

from . import _files, _formats, _saving

__all__ = ["load_model", "load_weights"]


def _is_keras(path: object) -> bool:
    """Whether the file is a zip archive or an HDF5 file (what Keras writes); polynn's own files are
    neither. The Keras reader checks the rest; the file's errors name it either way."""
    with _files.reading(path) as (stream, size):
        return _formats.container(stream, size) is not None


def load_model(path: str | os.PathLike[str], model_class: type, backend: str | None = None,
               dtype: str | None = None, allow_nonfinite: bool = False, **session: Any) -> Any:
    """A model from a polynn model file (_saving.load_model) or a Keras 3 .keras archive
    (_keras_import.model_from_keras), whichever the file is; `session` holds compile()'s device and
    distribution for a compiled one."""
    allow_nonfinite = _saving._check_flag(allow_nonfinite, "load_model")
    with _saving._naming(path):
        keras = _is_keras(path)
    if not keras:
        return _saving.load_model(path, model_class, backend=backend, dtype=dtype, allow_nonfinite=allow_nonfinite,
                                  **session)
    from . import _keras_archive, _keras_import  # h5py and the Keras tables load only for Keras files

    with _saving._naming(path), _keras_archive.open_keras_file(path) as keras_file:
        return _keras_import.model_from_keras(keras_file, model_class, backend=backend, dtype=dtype,
                                              allow_nonfinite=allow_nonfinite, **session)


def load_weights(model: Any, path: str | os.PathLike[str], allow_nonfinite: bool = False) -> None:
    """Set `model`'s weights from a polynn file or a Keras .weights.h5 / .keras file."""
    allow_nonfinite = _saving._check_flag(allow_nonfinite, "load_weights")
    with _saving._naming(path):
        keras = _is_keras(path)
    if not keras:
        _saving.load_weights(model, path, allow_nonfinite=allow_nonfinite)
        return
    from . import _keras_archive, _keras_import

    with _saving._naming(path), _keras_archive.open_keras_file(path) as keras_file:
        _keras_import.load_weights_from_keras(model, keras_file, allow_nonfinite=allow_nonfinite)
