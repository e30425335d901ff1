"""Writing Keras 3 files: a .keras archive (save) and a .weights.h5 file (save_weights), atomically.

Everything is built in memory first, the HDF5 file by h5py (the keras-files extra) in a BytesIO
and the archive around it, so a refusal or an error leaves no file behind; polynn._files then
writes the bytes beside the target and renames them over it. The archive holds, as Keras writes
it, metadata.json, config.json and model.weights.h5, stored uncompressed.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from . import _extras, _files, _keras_export
from .errors import InvalidArgumentError, ModelFileError

__all__ = ["save_model", "save_weights"]

_T = TypeVar("_T")

_FEATURE = "saving Keras files (.keras, .weights.h5)"
# Every member's time stamp: a fixed one, so the same model gives the same members (metadata.json
# says when it was saved).
_DATE = (1980, 1, 1, 0, 0, 0)


def _hdf5(groups: list[_keras_export.Group]) -> bytes:
    """The HDF5 image of Keras's weights layout: '<path>/vars' groups with a 'name' attribute, each
    holding its arrays as datasets '0', '1', ..."""
    h5py = _extras.require("h5py", "keras-files", _FEATURE)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        for group in groups:
            node = file.create_group("vars") if not group.path else file.require_group(group.path).create_group("vars")
            node.attrs["name"] = group.name
            for index, array in enumerate(group.arrays):
                node.create_dataset(str(index), data=array)
    return buffer.getvalue()


def _member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _archive(config: dict, weights: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _member(archive, "metadata.json", json.dumps(_keras_export.metadata()).encode())
        _member(archive, "config.json", json.dumps(config, allow_nan=False).encode())
        _member(archive, "model.weights.h5", weights)
    return buffer.getvalue()


def _checked(path: Any, build: Callable[[], _T]) -> _T:
    """build(), its refusals made to name the file."""
    try:
        return build()
    except ModelFileError as error:
        raise ModelFileError(f"cannot save model file {_files.describe(_files.filepath(path))}: {error}") from None


def _write(path: Any, data: bytes) -> None:
    def write(stream: BinaryIO) -> None:
        stream.write(data)

    _files.atomic_write(path, write)


def save_model(model: Any, path: Any) -> None:
    """Write `model` as a Keras 3 .keras archive: config, weights, compile config and optimizer state."""
    config = _checked(path, lambda: _keras_export.model_config(model))
    groups = _checked(path, lambda: _keras_export.variable_groups(model))
    _write(path, _archive(config, _hdf5(groups)))


def save_weights(model: Any, path: Any) -> None:
    """Write `model`'s weights (and its optimizer's state, when compiled) as Keras 3's .weights.h5."""
    if model.input_shape is None:
        # Keras refuses an unbuilt model's weights too: there are none yet.
        raise InvalidArgumentError("model", f"{model.name} without an input shape",
                                   "a model whose input shape is known (an Input layer, input_dim=, build() "
                                   "or data seen), so that it has weights", owner="save_weights")
    groups = _checked(path, lambda: _keras_export.variable_groups(model, activations=False))
    _write(path, _hdf5(groups))
