"""Keras's weights HDF5 (model.weights.h5, .weights.h5) walked and read defensively with an open h5py file.

Only the structure is read when a file is opened: link types, object kinds, datatypes, shapes, storage
layouts and storage sizes. Every dataset must be a plain numeric array stored contiguous and unfiltered,
as Keras writes, its bytes within the file, so a dataset declaring terabytes in a small file is refused
before anything is read; a dataset's values are read only when asked for, one at a time, by polynn
from the file's bytes (HDF5's data path, which a damaged compressed dataset made crash, never runs).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ._safetensors import MAX_RANK, brief
from .errors import ModelFileError, PolynnError

__all__ = ["KerasVariable", "WeightsTree", "guarded", "MAX_LINKS", "MAX_DEPTH", "MAX_EXPANSION",
           "EXPANSION_FLOOR"]

# Keras writes a few links per layer (layers/<name>/vars/<i>) and per optimizer slot: enough for the
# layer cap (_saving.MAX_LAYERS); the walk's cost at this cap is in docs/performance.md.
MAX_LINKS = 2**18
# Keras's deepest paths are layers/<model>/layers/<layer>/vars/<i> for each level of nested models.
MAX_DEPTH = 32
_MAX_NAME = 255
# A compressed (gzip) dataset may declare at most this many times the bytes it stores, and all the
# datasets together at most this many times the file's size: Keras itself refuses zip members
# expanding more than 100 times. Under the floor, any ratio passes (small, zero-filled weights).
MAX_EXPANSION = 100
EXPANSION_FLOOR = 16 * 2**20
_DIGITS = re.compile(r"(\d+)")


class KerasVariable(NamedTuple):
    """One dataset of the weights file: its path ("layers/dense/vars/0"), shape and NumPy dtype name."""

    path: str
    shape: tuple[int, ...]
    dtype: str


@contextlib.contextmanager
def guarded(what: str) -> Iterator[None]:
    """Any error but polynn's raised inside is a ModelFileError about `what`: a hostile file can make
    h5py, HDF5 or zipfile raise anything (OSError, KeyError, ValueError, RuntimeError, ...)."""
    try:
        yield
    except PolynnError:
        raise
    except Exception as error:
        detail = str(error)
        detail = f": {brief(detail, 300)}" if detail else ""
        raise ModelFileError(f"{what}: {type(error).__name__}{detail}") from None


def _numeric_types(h5t: Any) -> list[tuple[Any, np.dtype]]:
    """The HDF5 datatypes accepted, each with the NumPy dtype of its bytes in the file (byte order included)."""
    pairs = [("IEEE_F16", "float16"), ("IEEE_F32", "float32"), ("IEEE_F64", "float64")]
    for bits in (8, 16, 32, 64):
        pairs += [(f"STD_I{bits}", f"int{bits}"), (f"STD_U{bits}", f"uint{bits}")]
    return [(getattr(h5t, f"{name}{order}"), np.dtype(dtype).newbyteorder("<" if order == "LE" else ">"))
            for name, dtype in pairs for order in ("LE", "BE")]


def _natural(path: str) -> list:
    """Sort key putting vars/2 before vars/10, as Keras numbers them."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(path)]


def _check_name(name: str, parent: str) -> str:
    path = f"{parent}/{name}" if parent else name
    if not 0 < len(name) <= _MAX_NAME or not name.isprintable() or name in (".", ".."):
        raise ModelFileError(f"the HDF5 object {brief(path)} has a name that is not allowed; accepted: 1 to "
                             f"{_MAX_NAME} printable characters, not '.' or '..'")
    return path


class WeightsTree:
    """The checked datasets of an open h5py.File of `size` bytes, by path; read(path) reads one.

    `raw(offset, count)` gives bytes of the file image: a dataset's values are read from there, at the
    offset HDF5 gives, so HDF5's own data path (chunk indexes, filters), which a damaged file can make
    crash the process, never runs. Keras writes every dataset contiguous and unfiltered; other layouts
    are refused."""

    def __init__(self, h5py: Any, handle: Any, size: int, raw: Callable[[int, int], bytes]) -> None:
        self._h5py, self._handle, self._size, self._raw = h5py, handle, size, raw
        self._types = _numeric_types(h5py.h5t)
        with guarded("the HDF5 file's structure cannot be read"):
            self._refuse_legacy()
            found = self._walk()
        self.variables: dict[str, KerasVariable] = {path: found[path] for path in sorted(found, key=_natural)}

    def _refuse_legacy(self) -> None:
        """Keras 2 and tf.keras wrote another layout (model.save('x.h5')), which Keras 3 reads only as a
        legacy format: said as such rather than as a file of unexpected datasets."""
        attrs = self._handle.attrs
        # links.exists follows no link (`name in group` would open an external link's file).
        if "model_config" in attrs or "layer_names" in attrs or self._handle.id.links.exists(b"model_weights"):
            raise ModelFileError(
                "this is a legacy Keras 2 / tf.keras HDF5 file (model.save('x.h5') or a legacy save_weights), "
                "not Keras 3's weights layout; accepted: a Keras 3 .keras archive or .weights.h5 file (load it "
                "in Keras and save it again as .keras)")

    def _walk(self) -> dict[str, KerasVariable]:
        h5l, h5o = self._h5py.h5l, self._h5py.h5o
        found: dict[str, KerasVariable] = {}
        links, total = 0, 0
        stack = [("", self._handle.id, 0)]
        while stack:
            parent, group, depth = stack.pop()
            links += group.get_num_objs()
            if links > MAX_LINKS:
                raise ModelFileError(f"the HDF5 file holds more than {MAX_LINKS} links; accepted: at most "
                                     f"{MAX_LINKS} (a Keras weights file has a few per layer)")
            for raw in group:
                path = _check_name(raw.decode("utf-8"), parent)
                kind = group.links.get_info(raw).type
                if kind != h5l.TYPE_HARD:
                    named = {h5l.TYPE_SOFT: "a soft link", h5l.TYPE_EXTERNAL: "an external link (to another file)"
                             }.get(kind, f"a user-defined link (type {kind})")
                    raise ModelFileError(f"{brief(path)} is {named}; "
                                         f"accepted: groups and datasets only, as Keras writes")
                child = h5o.open(group, raw)
                info = h5o.get_info(child)
                if info.rc != 1:
                    raise ModelFileError(f"{brief(path)} is linked from {info.rc} places; accepted: each object "
                                         f"linked once, as Keras writes (several links make aliases or cycles)")
                if info.type == h5o.TYPE_GROUP:
                    if depth + 1 >= MAX_DEPTH:
                        raise ModelFileError(f"{brief(path)} nests more than {MAX_DEPTH} groups deep; accepted: "
                                             f"at most {MAX_DEPTH}")
                    stack.append((path, child, depth + 1))
                elif info.type == h5o.TYPE_DATASET:
                    found[path], nbytes = self._dataset(path, child)
                    total += nbytes
                else:
                    what = "a named (committed) datatype" if info.type == h5o.TYPE_NAMED_DATATYPE \
                        else f"an HDF5 object of type {info.type}"
                    raise ModelFileError(f"{brief(path)} is {what}; accepted: groups and datasets only")
        bound = max(EXPANSION_FLOOR, MAX_EXPANSION * self._size)
        if total > bound:
            raise ModelFileError(f"the datasets declare {total} bytes in all, from a file of {self._size} bytes; "
                                 f"accepted: at most {bound} ({MAX_EXPANSION} times the file's size, or "
                                 f"{EXPANSION_FLOOR} bytes)")
        return found

    def _file_dtype(self, path: str, dataset: Any) -> np.dtype:
        datatype = dataset.get_type()
        if datatype.committed():
            raise ModelFileError(f"dataset {brief(path)} uses a named (committed) datatype; accepted: a plain "
                                 f"float16, float32, float64 or integer type")
        for known, dtype in self._types:
            if datatype == known:
                return dtype
        classes = {getattr(self._h5py.h5t, n): n.lower() for n in
                   ("INTEGER", "FLOAT", "STRING", "COMPOUND", "ENUM", "VLEN", "ARRAY", "REFERENCE", "OPAQUE",
                    "BITFIELD", "TIME")}
        kind = classes.get(datatype.get_class(), "unknown")
        raise ModelFileError(f"dataset {brief(path)} has an HDF5 datatype of class {kind} and size "
                             f"{datatype.get_size()}; accepted: IEEE float16, float32 or float64, or an 8- to "
                             f"64-bit integer")

    def _shape(self, path: str, dataset: Any) -> tuple[int, ...]:
        h5s = self._h5py.h5s
        space = dataset.get_space()
        if space.get_simple_extent_type() not in (h5s.SCALAR, h5s.SIMPLE):
            raise ModelFileError(f"dataset {brief(path)} has no dataspace (an HDF5 null dataset); accepted: an "
                                 f"array or a scalar")
        shape = tuple(int(d) for d in space.shape)
        if len(shape) > MAX_RANK:
            raise ModelFileError(f"dataset {brief(path)} has rank {len(shape)}; accepted: at most {MAX_RANK}")
        return shape

    def _dataset(self, path: str, dataset: Any) -> tuple[KerasVariable, int]:
        """The variable `dataset` holds, and its size in bytes, once its layout and storage show that
        its values are bytes of this file, stored as they are (contiguous, unfiltered)."""
        variable, nbytes, _ = self._located(path, dataset)
        return variable, nbytes

    def _located(self, path: str, dataset: Any) -> tuple[KerasVariable, int, tuple[int, np.dtype]]:
        """_dataset's answer, and where the values lie: (offset in the file, dtype of the bytes there)."""
        h5d = self._h5py.h5d
        file_dtype, shape = self._file_dtype(path, dataset), self._shape(path, dataset)
        nbytes = math.prod(shape) * file_dtype.itemsize
        plist = dataset.get_create_plist()
        layout = plist.get_layout()
        if layout != h5d.CONTIGUOUS:
            what = {h5d.VIRTUAL: "a virtual dataset (its data lives in other files)",
                    h5d.CHUNKED: "a chunked dataset (compressed or filtered data, or a chunk index)",
                    h5d.COMPACT: "a compact dataset (data inside its header)"}.get(layout, f"of layout {layout}")
            raise ModelFileError(f"dataset {brief(path)} is {what}; accepted: contiguous, unfiltered data in this "
                                 f"file, as Keras writes")
        if plist.get_external_count():
            raise ModelFileError(f"dataset {brief(path)} keeps its data in external files; accepted: data stored "
                                 f"in this file")
        offset = dataset.get_offset() if nbytes else 0
        stored = dataset.get_storage_size()
        if offset is None or stored != nbytes or not 0 <= offset <= self._size - nbytes:
            # Unwritten data reads as the fill value: a huge dataset would allocate from nothing.
            raise ModelFileError(f"dataset {brief(path)} of shape {brief(list(shape))} and dtype {file_dtype.name} "
                                 f"declares {nbytes} bytes, but the file stores {stored} at offset {offset} of "
                                 f"{self._size}; accepted: datasets whose data is all in the file")
        return KerasVariable(path, shape, file_dtype.name), nbytes, (offset, file_dtype)

    def read(self, path: str) -> np.ndarray:
        """The dataset at `path`, a new native-order array of its declared shape and dtype."""
        variable = self.variables.get(path) if isinstance(path, str) else None
        if variable is None:
            raise ModelFileError(f"the weights hold no dataset {brief(path)}; they hold "
                                 f"{brief(list(self.variables))}")
        if not self._handle.id.valid:
            raise ModelFileError(f"dataset {brief(path)} read after the file was closed; accepted: reads inside "
                                 f"the 'with open_keras_file(...)' block")
        with guarded(f"dataset {brief(path)} cannot be read"):
            dataset = self._h5py.h5o.open(self._handle.id, path.encode("utf-8"))
            # Checked again: the file may have changed on disk since it was opened.
            found = self._located(path, dataset) if isinstance(dataset, self._h5py.h5d.DatasetID) else None
            if found is None or found[0] != variable:
                raise ModelFileError(f"dataset {brief(path)} changed since the file was opened")
            _, nbytes, (offset, file_dtype) = found
            data = self._raw(offset, nbytes) if nbytes else b""
            values = np.frombuffer(data, dtype=file_dtype).reshape(variable.shape)
            return values.astype(file_dtype.newbyteorder("="))
