"""Keras's model files (.keras zip archives, HDF5): told by content when read, by name when written.

polynn reads and writes only its own safetensors files; this module keeps the knowledge of the
formats it does not read or write in one place, so that a message can say what a file is.
"""

from __future__ import annotations

import os
import zipfile
from typing import BinaryIO

from . import _files
from .errors import InvalidArgumentError

__all__ = ["identify", "container", "unreadable_message", "check_writable_name", "KERAS_SUFFIXES"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5's superblock sits at 0 or, after a user block, at 512, 1024, 2048, ... (a power of two).
_HDF5_OFFSETS = (0, *(512 << k for k in range(12)))
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# The names Keras 3 saves under (model.save: .keras, legacy .h5 / .hdf5; save_weights: .weights.h5).
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_COPY_HINT = ("rebuild the model with polynn's layers and copy the weights over with "
              "model.set_weights(keras_model.get_weights())")


def identify(stream: BinaryIO, size: int) -> str | None:
    """What a file polynn cannot read is, from its content: a Keras .keras archive (or another zip
    file), an HDF5 file (Keras's .h5 and .weights.h5), or None. Leaves the stream's position at 0."""
    try:
        for offset in _HDF5_OFFSETS:
            if offset + len(_HDF5_MAGIC) > size:
                break
            stream.seek(offset)
            if stream.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
                return "an HDF5 file, as Keras writes for .h5 models and .weights.h5 weights"
        stream.seek(0)
        if stream.read(4) in _ZIP_MAGIC:
            stream.seek(0)
            return _zip_kind(stream)
        return None
    finally:
        stream.seek(0)


def container(stream: BinaryIO, size: int) -> str | None:
    """"hdf5" or "zip" from a file's first bytes (what `identify` looks at), else None; the
    content is not checked further. Leaves the stream's position at 0."""
    try:
        for offset in _HDF5_OFFSETS:
            if offset + len(_HDF5_MAGIC) > size:
                break
            stream.seek(offset)
            if stream.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
                return "hdf5"
        stream.seek(0)
        return "zip" if stream.read(4) in _ZIP_MAGIC else None
    finally:
        stream.seek(0)


def _zip_kind(stream: BinaryIO) -> str:
    try:
        with zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
    except Exception:  # a damaged or hostile archive: recognising it must not fail otherwise
        return "a zip archive"
    if {"config.json", "metadata.json"} <= names:
        return "a Keras .keras model archive (a zip file)"
    return "a zip archive"


def unreadable_message(kind: str) -> str:
    """The refusal of a file `identify` recognised; the caller names the file."""
    return (f"this is {kind}, not a polynn file: polynn reads the safetensors files its own save() and "
            f"save_weights() write; to bring a Keras model over, {_COPY_HINT}")


def check_writable_name(path: object, verb: str) -> None:
    """Refuse to write a polynn (safetensors) file under a name Keras writes (.keras, .h5, .hdf5),
    which Keras would then fail to open: before anything is created or touched."""
    name = _files.filepath(path)
    lowered = os.path.basename(name).lower()
    suffix = next((s for s in KERAS_SUFFIXES if lowered.endswith(s)), None)
    if suffix is None:
        return
    shown = ".weights.h5" if lowered.endswith(".weights.h5") else suffix
    raise InvalidArgumentError(
        "filepath", name,
        f"a name for a safetensors file, such as 'model.safetensors' (any name but Keras's .keras, .h5 and "
        f".hdf5): {verb} writes polynn's safetensors format, not Keras's {shown} format, and Keras could not "
        f"open the file", owner=verb)
