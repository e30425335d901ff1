"""Keras's model files (.keras zip archives, HDF5): told by content when read, by name when written.

Reading: the content tells a Keras file (container), which polynn._keras_archive then reads.
Writing: the name picks the format (check_writable_name), as Keras 3's
own save() and save_weights() do: '.keras' a Keras archive, '.weights.h5' Keras's weights file, any
other name but Keras's legacy '.h5' / '.hdf5' polynn's safetensors. A polynn file is never written
under a Keras name.
"""

from __future__ import annotations

import os
from typing import BinaryIO, NoReturn

from . import _files
from .errors import InvalidArgumentError

__all__ = ["container", "check_writable_name", "KERAS_SUFFIXES", "SAFETENSORS",
           "KERAS_MODEL", "KERAS_WEIGHTS"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5's superblock sits at 0 or, after a user block, at 512, 1024, 2048, ... (a power of two).
_HDF5_OFFSETS = (0, *(512 << k for k in range(12)))
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# The names Keras 3 saves under (model.save: .keras, legacy .h5 / .hdf5; save_weights: .weights.h5).
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def container(stream: BinaryIO, size: int) -> str | None:
    """"hdf5" (Keras's .weights.h5, and model.weights.h5 inside a .keras archive) or "zip" (a .keras
    archive) from a file's first bytes, else None; the content is not checked further (polynn's
    safetensors files are neither). Leaves the stream's position at 0."""
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


# What check_writable_name answers: the format a name is written in.
SAFETENSORS = "safetensors"
KERAS_MODEL = "keras"  # a Keras 3 .keras archive (save)
KERAS_WEIGHTS = "keras-weights"  # a Keras 3 .weights.h5 file (save_weights)
_OTHER_NAMES = "any other name (such as 'model.safetensors') for polynn's safetensors format"


def _keras_suffix(lowered: str) -> str | None:
    """The Keras ending of a lower-cased file name: '.weights.h5', '.keras', '.h5', '.hdf5' or None."""
    if lowered.endswith(".weights.h5"):
        return ".weights.h5"
    return next((s for s in KERAS_SUFFIXES if lowered.endswith(s)), None)


def check_writable_name(path: object, verb: str, *, weights: bool | None = None) -> str:
    """The format a file of this name is written in, as Keras 3 names its files: SAFETENSORS,
    KERAS_MODEL ('.keras', whole models) or KERAS_WEIGHTS ('.weights.h5', weights only). `weights`
    says which the writer writes (default: True for save_weights, False for save, None, either, for
    other verbs). Any other Keras name is refused before anything is created or touched: the legacy
    '.h5' / '.hdf5' model format, a weights name for a whole model and the reverse (Keras 3 refuses
    those too), and Keras's endings in another case, which keras.models.load_model would not open."""
    name = _files.filepath(path)
    base = os.path.basename(name)
    suffix = _keras_suffix(base.lower())
    if suffix is None:
        return SAFETENSORS
    if weights is None:
        weights = {"save_weights": True, "save": False}.get(verb)
    whole = "a name ending in '.keras' (a Keras 3 model archive, which keras.models.load_model reads)"
    partial = ("a name ending in '.weights.h5' (Keras 3's weights file, which keras_model.load_weights reads; "
               "Keras 3's save_weights takes no other Keras name)")
    accepted = {True: partial, False: whole, None: f"{whole}, {partial}"}[weights]

    def refuse(why: str) -> NoReturn:
        raise InvalidArgumentError("filepath", name, f"{accepted}, or {_OTHER_NAMES}: {why}", owner=verb)

    if not base.endswith(suffix):
        refuse(f"Keras spells its ending {suffix!r} in lower case, and keras.models.load_model and "
               f"load_weights do not open {base[-len(suffix):]!r} files")
    if suffix in (".h5", ".hdf5"):
        refuse(f"{suffix!r} is Keras's legacy HDF5 model format, which polynn does not write (Keras 3 "
               f"itself calls it legacy and saves with '.keras')")
    if suffix == ".keras" and weights:
        refuse("a '.keras' file holds a whole model, which save() writes")
    if suffix == ".weights.h5" and weights is False:
        refuse("a '.weights.h5' file holds weights only, which save_weights() writes")
    return KERAS_MODEL if suffix == ".keras" else KERAS_WEIGHTS
