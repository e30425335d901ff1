"""Keras 3 files (.keras zip archives, .weights.h5 HDF5) opened defensively: parsed, never extracted or executed.

A .keras archive holds metadata.json, config.json and model.weights.h5 (and, for Keras's preprocessing
layers, files under assets/). The archive is checked before any member is read: its central directory
is bounded, member names are plain (no absolute, traversal, backslash or NUL names), none repeats, none
is encrypted, compression is stored or deflate, and every declared size is capped (the weights relative
to the archive's size). Members are read into memory, never to disk, counting the bytes decompressed
and checking their CRC. The JSON is strict and bounded; the weights HDF5 is walked by _keras_hdf5
without reading data. Every problem is a ModelFileError (or FileAccessError) naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np

from . import _extras, _files, _formats
from ._keras_hdf5 import EXPANSION_FLOOR, MAX_EXPANSION, KerasVariable, WeightsTree, guarded
from ._safetensors import brief
from .errors import ModelFileError

__all__ = ["open_keras_file", "KerasFile", "KerasVariable", "CONFIG", "METADATA", "WEIGHTS", "MAX_JSON_BYTES",
           "MAX_METADATA_BYTES", "MAX_JSON_DEPTH", "MAX_MEMBERS", "MAX_WEIGHTS_BYTES"]

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
_ASSETS = "assets/"
# A Sequential model's config takes a few kilobytes per layer; metadata.json is two short strings.
MAX_JSON_BYTES = 16 * 2**20
MAX_METADATA_BYTES = 2**20
# Keras's configs nest about a dozen levels (model, layers, layer, config, dtype policy, ...).
MAX_JSON_DEPTH = 64
# Integers in a config are sizes, shapes and seeds.
_MAX_DIGITS = 64
# Keras writes three members, plus one per asset file of a preprocessing layer.
MAX_MEMBERS = 4096
_MAX_DIRECTORY_BYTES = 4 * 2**20
_MAX_MEMBER_NAME = 1024
# The weights are read into memory whole (as Keras does): capped, whatever the archive says.
MAX_WEIGHTS_BYTES = 16 * 2**30
_CHUNK = 2**20
_MESSAGE_LIMIT = 1000
_END = b"PK\x05\x06"
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"
_DRIVE = re.compile(r"[A-Za-z]:")
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class KerasFile:
    """A Keras file's parsed parts: kind "archive" (.keras) or "weights" (.weights.h5), config and
    metadata (dicts; None for weights), the weights' variables by path, and read(path) for one."""

    def __init__(self, name: str, kind: str, config: dict | None, metadata: dict | None, tree: WeightsTree) -> None:
        self.filename, self.kind, self.config, self.metadata = name, kind, config, metadata
        self._tree = tree
        self.variables: dict[str, KerasVariable] = tree.variables

    def read(self, path: str) -> np.ndarray:
        """The variable at `path` (a key of `variables`): a new array of its shape and dtype."""
        with _naming(self.filename):
            return self._tree.read(path)

    def __repr__(self) -> str:
        return f"<KerasFile {_files.describe(self.filename)} kind={self.kind!r} variables={len(self.variables)}>"


@contextlib.contextmanager
def open_keras_file(path: object) -> Iterator[KerasFile]:
    """The Keras .keras archive or .weights.h5 file at `path`, told by content, checked and parsed; its
    variables are read with read() inside the block. Every problem is a ModelFileError naming the file."""
    with _files.reading(path) as (stream, size):
        name = _files.filepath(path)
        with contextlib.ExitStack() as resources:
            with _naming(name):
                keras_file = _open(stream, size, name, resources)
            yield keras_file


@contextlib.contextmanager
def _naming(name: str) -> Iterator[None]:
    """A ModelFileError raised inside names the file, in a message of bounded length."""
    try:
        yield
    except ModelFileError as error:
        where, message = _files.describe(name), str(error)
        if len(message) <= _MESSAGE_LIMIT and where in message:
            raise
        if len(message) > _MESSAGE_LIMIT:
            message = f"{message[:_MESSAGE_LIMIT]}... (message cut: {len(message)} characters)"
        raise type(error)(message if where in message else f"cannot read Keras file {where}: {message}") from None


def _open(stream: BinaryIO, size: int, name: str, resources: contextlib.ExitStack) -> KerasFile:
    container = _formats.container(stream, size)
    if container is None:
        raise ModelFileError("it is neither a Keras .keras archive (a zip file) nor a Keras .weights.h5 file "
                             "(HDF5); accepted: a file written by Keras 3's model.save('x.keras') or "
                             "save_weights('x.weights.h5')")
    h5py = _extras.require("h5py", "keras-files", "reading Keras files")
    window = _Window(stream, size)
    config: dict | None = None
    metadata: dict | None = None
    source: io.RawIOBase | io.BytesIO = window
    hdf5_size, where = size, "the file"
    if container == "zip":
        config, metadata, weights = _read_archive(window, size)
        source, hdf5_size, where = weights, weights.seek(0, os.SEEK_END), f"member {WEIGHTS!r}"
        weights.seek(0)
    with guarded(f"{where} is not a readable HDF5 file"):
        handle = h5py.File(source, "r")
    resources.callback(_close, handle)
    try:
        tree = WeightsTree(h5py, handle, hdf5_size, _raw_reader(source, hdf5_size))
    except ModelFileError as error:
        raise ModelFileError(f"{where}: {error}" if container == "zip" else str(error)) from None
    return KerasFile(name, "archive" if container == "zip" else "weights", config, metadata, tree)


def _raw_reader(source: io.RawIOBase | io.BytesIO, size: int) -> Callable[[int, int], bytes]:
    """read(offset, count): `count` bytes of the HDF5 image at `offset` (WeightsTree checked both
    against `size`); a short read, the file having shrunk meanwhile, is a ModelFileError."""

    def read(offset: int, count: int) -> bytes:
        source.seek(offset)
        data = source.read(count) or b""
        if len(data) != count or offset + count > size:
            raise ModelFileError(f"the weights end at byte {offset + len(data)} where a dataset needs "
                                 f"{offset + count}; accepted: a whole file (it may have changed while read)")
        return data

    return read


def _close(handle: Any) -> None:
    with contextlib.suppress(Exception):  # closing a damaged file may fail; nothing is left to do
        handle.close()


class _Window(io.RawIOBase):
    """The first `size` bytes of a stream, as a read-only file: zipfile and h5py see the size that was
    checked, however the file grows meanwhile. Closing it leaves the stream open."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        super().__init__()
        self._stream, self._size, self._position = stream, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            # OSError(EINVAL), as a real file raises: zipfile probes a short file's end this way.
            raise OSError(errno.EINVAL, f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = max(0, min(len(view), self._size - self._position))
        if wanted == 0:
            return 0
        self._stream.seek(self._position)
        count = self._stream.readinto(view[:wanted])  # type: ignore[attr-defined]
        self._position += count or 0
        return count or 0


# ---- the zip archive -------------------------------------------------------------------------


def _read_archive(window: _Window, size: int) -> tuple[dict, dict, io.BytesIO]:
    _check_directory(window, size)
    with guarded("it is not a readable zip archive (truncated or damaged)"):
        archive = zipfile.ZipFile(window)
    with archive:
        members = _members(archive, size)
        config = _json_member(archive, members[CONFIG], MAX_JSON_BYTES)
        metadata = _json_member(archive, members[METADATA], MAX_METADATA_BYTES)
        return config, metadata, _weights_member(archive, members[WEIGHTS])


def _check_directory(window: _Window, size: int) -> None:
    """Bound the central directory before zipfile parses it (it makes an object per entry), read
    from the end records as zipfile finds them."""
    tail_size = min(size, 22 + 0xFFFF)
    window.seek(size - tail_size)
    tail = window.read(tail_size)
    at = tail_size - 22 if tail[-22:-18] == _END and tail[-2:] == b"\0\0" else tail.rfind(_END)
    if at < 0 or tail_size - at < 22:
        raise ModelFileError("it is a truncated or damaged zip archive: it has no end of central directory "
                             "record; accepted: a whole .keras archive")
    _, disk, _, _, entries, directory, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if (entries == 0xFFFF or directory == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == _END64_LOCATOR:
        offset = struct.unpack("<4sLQL", tail[at - 20:at])[2]
        window.seek(offset)
        record = window.read(56)
        if len(record) != 56 or record[:4] != _END64:
            raise ModelFileError("it is a damaged zip archive: its zip64 end record is missing")
        entries, directory = struct.unpack("<4sQ2H2L4Q", record)[7:9]
    if disk != 0:
        raise ModelFileError(f"it is part {disk + 1} of a multi-part zip archive; accepted: a single .keras file")
    if entries > MAX_MEMBERS or directory > _MAX_DIRECTORY_BYTES:
        raise ModelFileError(f"its zip directory lists {entries} members in {directory} bytes; accepted: at most "
                             f"{MAX_MEMBERS} members in {_MAX_DIRECTORY_BYTES} bytes")


def _members(archive: zipfile.ZipFile, size: int) -> dict[str, zipfile.ZipInfo]:
    """The three members Keras reads, once every member is checked; members under assets/ (Keras's
    preprocessing layers' files) are checked and otherwise left unread."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"the archive has {len(infos)} members; accepted: at most {MAX_MEMBERS}")
    found: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info in infos:
        name = _member_name(info)
        if name in seen:
            raise ModelFileError(f"the archive holds member {brief(name)} twice; accepted: each member once")
        seen.add(name)
        if info.flag_bits & 0x41:
            raise ModelFileError(f"member {brief(name)} is encrypted; accepted: unencrypted members, as Keras writes")
        if info.compress_type not in _METHODS:
            raise ModelFileError(f"member {brief(name)} uses zip compression method {info.compress_type}; accepted: "
                                 f"{' or '.join(f'{v} ({k})' for k, v in _METHODS.items())}")
        if info.header_offset + info.compress_size > size:
            raise ModelFileError(f"member {brief(name)} extends past the end of the archive ({size} bytes): the "
                                 f"archive is truncated or damaged")
        if name in (CONFIG, METADATA, WEIGHTS):
            found[name] = info
        elif name == "model.weights.npz":
            raise ModelFileError("its weights are in Keras's npz format (saved with weights_format='npz'); "
                                 f"accepted: {WEIGHTS}, Keras's default format")
        elif not name.startswith(_ASSETS):
            raise ModelFileError(f"the archive holds the member {brief(name)}, which Keras does not write; "
                                 f"accepted: {CONFIG}, {METADATA}, {WEIGHTS} and files under {_ASSETS}")
    missing = [name for name in (CONFIG, METADATA, WEIGHTS) if name not in found]
    if missing:
        raise ModelFileError(f"the archive has no member {', '.join(map(repr, missing))}; a Keras .keras archive "
                             f"holds {CONFIG}, {METADATA} and {WEIGHTS}")
    return found


def _member_name(info: zipfile.ZipInfo) -> str:
    """The member's name, refused unless it is a plain relative path (zipfile itself cuts a name at
    a NUL character, which orig_filename keeps)."""
    name = info.orig_filename
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if (name != info.filename or not 0 < len(name) <= _MAX_MEMBER_NAME or "\\" in name or name.startswith("/")
            or _DRIVE.match(name) or any(part in ("", ".", "..") for part in parts) or not name.isprintable()):
        raise ModelFileError(f"the archive holds a member named {brief(name)}; accepted: relative paths of printable "
                             f"characters, separated by '/', without '.', '..' or empty parts, backslashes or a "
                             f"drive (never extracted, such a name is refused as hostile)")
    return name


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: BinaryIO) -> None:
    """Decompress a member into `out`, counting the bytes (never more than its declared size) and
    checking its CRC-32."""
    declared, count, crc = info.file_size, 0, 0
    with guarded(f"member {info.filename!r} cannot be read (the archive is damaged)"):
        with archive.open(info) as member:
            while True:
                chunk = member.read(_CHUNK)
                if not chunk:
                    break
                count += len(chunk)
                if count > declared:
                    raise ModelFileError(f"member {info.filename!r} decompresses to more than its declared "
                                         f"{declared} bytes; accepted: a member as its directory entry describes it")
                crc = zlib.crc32(chunk, crc)
                out.write(chunk)
    if count != declared:
        raise ModelFileError(f"member {info.filename!r} holds {count} bytes, not its declared {declared}: the "
                             f"archive is truncated or damaged")
    if crc != info.CRC:
        raise ModelFileError(f"member {info.filename!r} fails its CRC-32 check (0x{crc:08x}, declared "
                             f"0x{info.CRC:08x}): the archive is damaged")


def _check_declared(info: zipfile.ZipInfo, limit: int, why: str) -> None:
    if info.file_size > limit:
        raise ModelFileError(f"member {info.filename!r} declares {info.file_size} bytes; accepted: at most "
                             f"{limit} ({why})")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise ModelFileError(f"member {info.filename!r} is stored uncompressed yet declares {info.file_size} bytes "
                             f"in {info.compress_size}; accepted: equal sizes")


def _json_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> dict:
    _check_declared(info, limit, "a Keras config is a few kilobytes per layer")
    out = io.BytesIO()
    _read_member(archive, info, out)
    try:
        text = out.getvalue().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFileError(f"member {info.filename!r} is not UTF-8 text (byte {error.start}); accepted: "
                             f"UTF-8 JSON") from None
    value = parse_json(text, f"member {info.filename!r}")
    if not isinstance(value, dict):
        raise ModelFileError(f"member {info.filename!r} holds a JSON {type(value).__name__}; accepted: an object")
    return value


def _weights_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> io.BytesIO:
    _check_declared(info, MAX_WEIGHTS_BYTES, "polynn reads the weights into memory")
    bound = max(EXPANSION_FLOOR, MAX_EXPANSION * info.compress_size)
    if info.file_size > bound:
        raise ModelFileError(f"member {info.filename!r} declares {info.file_size} bytes compressed into "
                             f"{info.compress_size}: a zip bomb; accepted: at most {MAX_EXPANSION} times its "
                             f"compressed size (or {EXPANSION_FLOOR} bytes)")
    out = io.BytesIO()
    _read_member(archive, info, out)
    return out


# ---- strict JSON -----------------------------------------------------------------------------


def _no_constant(token: str) -> Any:
    raise ModelFileError(f"holds the non-standard JSON constant {token}; accepted: plain JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ModelFileError(f"holds the number {brief(text)}, which overflows to infinity; accepted: finite numbers")
    return value


def _integer(text: str) -> int:
    # Python 3.11 refuses ints past 4300 digits, earlier versions parse them at quadratic cost.
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise ModelFileError(f"holds an integer of {len(text.lstrip('-'))} digits; accepted: at most {_MAX_DIGITS}")
    return int(text)


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        repeated: set[str] = set()
        for key, _ in pairs:
            (repeated if key in seen else seen).add(key)
        raise ModelFileError(f"repeats the keys {brief(sorted(repeated))} in an object; accepted: each key once")
    return result


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(text: str, what: str) -> Any:
    """Plain JSON: no NaN or Infinity constants (nor numbers overflowing to them), no repeated keys,
    integers of at most 64 digits, nesting at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite, parse_int=_integer,
                           object_pairs_hook=_unique)
    except ModelFileError as error:
        raise ModelFileError(f"{what} {error}") from None
    except RecursionError:
        value = None
        depth = MAX_JSON_DEPTH + 1
    except (ValueError, TypeError) as error:
        raise ModelFileError(f"{what} is not valid JSON ({brief(str(error))})") from None
    else:
        depth = _depth(value)
    if depth > MAX_JSON_DEPTH:
        raise ModelFileError(f"{what} nests more than {MAX_JSON_DEPTH} levels deep; accepted: at most "
                             f"{MAX_JSON_DEPTH}")
    return value
