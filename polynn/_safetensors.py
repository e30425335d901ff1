"""A small, strict reader and writer of the safetensors format, in numpy alone.

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object mapping each tensor
name to {"dtype", "shape", "data_offsets"}, plus an optional "__metadata__" map of strings), then the
tensors' raw little-endian bytes, offsets relative to the end of the header. The reader trusts
nothing: the header is read alone, within caps on its size and contents, and every length, offset,
shape and name is checked against the file's size before any tensor is allocated; the data region
must be covered exactly, without holes or overlaps. Tensors are then read one at a time, on demand.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from .errors import ModelFileError

__all__ = ["DTYPES", "MAX_HEADER_BYTES", "MAX_RANK", "MAX_TENSORS", "Entry", "Header", "brief", "header_bytes",
           "write", "read_header", "read_tensor", "read"]

# safetensors dtype code -> numpy dtype (little-endian). Only plain numeric types: no objects.
DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES = {dtype: code for code, dtype in DTYPES.items()}
# A polynn model file holds each weight and up to three optimizer slots per weight: 2**16 tensors
# is 8,192 Dense layers under a three-slot optimizer, far deeper than a Sequential model gets.
MAX_TENSORS = 2**16
# Such a model's header needs well under these caps at MAX_TENSORS, and they bound what parsing
# any header may cost (docs/performance.md, "model file header caps").
MAX_HEADER_BYTES = 16 * 2**20
MAX_JSON_VALUES = 2**20
MAX_RANK = 32
# A zero-size tensor's other dimensions are bounded too: NumPy refuses shapes whose nonzero
# dimensions multiply past its address space, even with no element.
MAX_TENSOR_BYTES = 2**48
# Tensor names are plain identifiers with dots: nothing that reads as a path.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}")
_CHUNK = 2**24


class Entry(NamedTuple):
    """One tensor as the header describes it; offsets are relative to the data region."""

    name: str
    code: str
    shape: tuple[int, ...]
    begin: int
    end: int


class Header(NamedTuple):
    """A checked header: the tensors it lists, its __metadata__ map, and where the data region starts."""

    entries: dict[str, Entry]
    metadata: dict[str, str]
    data_start: int


def brief(value: Any, limit: int = 200) -> str:
    """repr(value), cut to about `limit` characters: a value from a file goes into a message bounded."""
    if isinstance(value, (list, tuple)) and len(value) > 10:
        # Never render a huge list whole just to cut it: its first items, and its length.
        text = f"{repr(list(value[:10]))[:-1]}, ...] ({len(value)} items)"
    else:
        text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ModelFileError(
            f"tensor name {brief(name)} is not allowed; accepted: letters, digits, '_', '-' and single dots "
            f"(no path separators, no '..'), at most 255 characters")
    return name


def header_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> tuple[bytes, list[np.ndarray]]:
    """The length prefix and JSON header for `tensors`, and the little-endian arrays to write after it."""
    header: dict = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ModelFileError(f"metadata entry {brief(key)}: {type(value).__name__}; accepted: str -> str")
        header["__metadata__"] = dict(metadata)
    arrays, offset = [], 0
    for name, tensor in tensors.items():
        _check_name(name)
        array = np.asarray(tensor)
        code = _CODES.get(array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype)
        if code is None:
            raise ModelFileError(f"tensor {name!r} has dtype {array.dtype}; "
                                 f"accepted: {', '.join(map(str, DTYPES.values()))}")
        array = np.asarray(array, dtype=DTYPES[code], order="C")  # ascontiguousarray would make 0-d arrays 1-d
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    # The reference writer pads the header with spaces so the data starts 8-byte aligned.
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, arrays


def write(stream: BinaryIO, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write one safetensors file to a binary stream, tensors in the dict's order."""
    prefix, arrays = header_bytes(tensors, metadata)
    stream.write(prefix)
    for array in arrays:
        # numpy's stubs declare ndarray's buffer protocol only from Python 3.12 on.
        stream.write(memoryview(array.reshape(-1)).cast("B"))  # type: ignore[arg-type]


def _reject_constant(token):
    raise ModelFileError(f"the header holds the non-standard JSON constant {token}; accepted: plain JSON")


def _unique_object(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        seen: set[str] = set()
        repeated: set[str] = set()
        for key in keys:  # one pass: counting each key would be quadratic in a hostile header
            (repeated if key in seen else seen).add(key)
        duplicated = sorted(repeated)
        raise ModelFileError(f"the header repeats the keys {brief(duplicated)}; accepted: each key once")
    return dict(pairs)


def parse_json(text: str, what: str):
    """Plain JSON only: no NaN/Infinity, no duplicate keys, bounded nesting."""
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_object)
    except ModelFileError:
        raise
    except RecursionError:
        raise ModelFileError(f"{what} nests too deeply; accepted: plain JSON") from None
    except (ValueError, TypeError) as error:
        raise ModelFileError(f"{what} is not valid JSON ({brief(str(error))})") from None


def _int_list(value, name: str, field: str, length: int | None = None) -> tuple[int, ...]:
    ok = isinstance(value, list) and (length is None or len(value) == length) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    if not ok:
        shape = f"{length} " if length else ""
        raise ModelFileError(f"tensor {name!r} has {field}={brief(value)}; accepted: a list of {shape}integers >= 0")
    return tuple(value)


def _entry(name, info, data_size: int) -> Entry:
    _check_name(name)
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        keys = brief(sorted(info)) if isinstance(info, dict) else type(info).__name__
        raise ModelFileError(f"tensor {name!r} has entry {keys}; accepted: exactly dtype, shape and data_offsets")
    code = info["dtype"]
    if not isinstance(code, str) or code not in DTYPES:
        raise ModelFileError(f"tensor {name!r} has dtype {brief(code)}; accepted: {', '.join(DTYPES)}")
    if isinstance(info["shape"], list) and len(info["shape"]) > MAX_RANK:
        raise ModelFileError(f"tensor {name!r} has rank {len(info['shape'])}; accepted: at most {MAX_RANK}")
    shape = _int_list(info["shape"], name, "shape")
    itemsize = DTYPES[code].itemsize
    # Python integers: an absurd shape cannot overflow into a plausible size.
    if math.prod(d for d in shape if d) * itemsize > MAX_TENSOR_BYTES:
        raise ModelFileError(
            f"tensor {name!r} has shape {brief(list(shape))}: its nonzero dimensions make {brief(math.prod(shape))} "
            f"elements of dtype {code}; accepted: at most {MAX_TENSOR_BYTES} bytes, zero-size or not")
    begin, end = _int_list(info["data_offsets"], name, "data_offsets", 2)
    if not begin <= end <= data_size:
        raise ModelFileError(
            f"tensor {name!r} has data_offsets [{brief(begin)}, {brief(end)}]; accepted: 0 <= begin <= end <= "
            f"{data_size}, the size of the data region")
    nbytes = math.prod(shape) * itemsize
    if end - begin != nbytes:
        raise ModelFileError(
            f"tensor {name!r} of dtype {code} and shape {list(shape)} needs {nbytes} bytes; "
            f"its data_offsets [{begin}, {end}] span {end - begin}")
    return Entry(name, code, shape, begin, end)


def read_header(stream: BinaryIO, size: int) -> Header:
    """Read and check the header of a safetensors file of `size` bytes, reading none of its data.
    Raises ModelFileError."""
    if size < 8:
        raise ModelFileError(f"the file is {size} bytes long, too short for a safetensors header (8-byte length first)")
    prefix = stream.read(8)
    if len(prefix) != 8:
        raise ModelFileError(f"the file ended inside its length field: read {len(prefix)} of 8 bytes")
    n = int.from_bytes(prefix, "little")
    if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
        raise ModelFileError(
            f"the header length field says {n} bytes; accepted: 2 to {min(MAX_HEADER_BYTES, size - 8)} "
            f"(the file has {size - 8} bytes after the length, and headers are capped at {MAX_HEADER_BYTES}); "
            f"truncated file or not a safetensors file")
    first = stream.read(1)
    if first != b"{":
        raise ModelFileError(f"the header starts with {first!r}; accepted: a JSON object starting with '{{'")
    raw = first + stream.read(n - 1)
    if len(raw) != n:
        raise ModelFileError(f"the file ended inside its header: read {len(raw)} of {n} bytes")
    # Every JSON value but the first follows a ',' or opens a container: a cheap bound on what
    # parsing would build (strings' own commas count too, which only errs on the safe side).
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > MAX_JSON_VALUES:
        raise ModelFileError(
            f"the header holds up to {values} JSON values; accepted: at most {MAX_JSON_VALUES} "
            f"(a polynn file needs about 11 per tensor, and holds at most {MAX_TENSORS} tensors)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFileError(f"the header is not UTF-8 ({error.reason} at byte {error.start})") from None
    del raw
    header = parse_json(text, "the header")
    if not isinstance(header, dict):
        raise ModelFileError(f"the header is a {type(header).__name__}; accepted: a JSON object")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError("the header's __metadata__ is not a map of strings to strings")
    if len(header) > MAX_TENSORS:
        raise ModelFileError(f"the header lists {len(header)} tensors; accepted: at most {MAX_TENSORS}")

    data_start = 8 + n
    data_size = size - data_start
    entries = {name: _entry(name, info, data_size) for name, info in header.items()}
    position = 0
    for entry in sorted(entries.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin != position:
            problem = ("overlaps the previous tensor" if entry.begin < position
                       else f"leaves a hole of {entry.begin - position} bytes")
            raise ModelFileError(f"tensor {entry.name!r} starts at byte {entry.begin}, which {problem}; "
                                 "accepted: tensors packed back to back")
        position = entry.end
    if position != data_size:
        raise ModelFileError(
            f"the tensors cover {position} bytes but the data region has {data_size}; "
            f"accepted: a data region covered exactly (truncated file or trailing bytes)")
    return Header(entries, dict(metadata), data_start)


def read_tensor(stream: BinaryIO, header: Header, name: str) -> np.ndarray:
    """The tensor `name` of a checked header, read from the stream into a fresh array."""
    entry = header.entries[name]
    array = np.empty(entry.shape, dtype=DTYPES[entry.code])
    if entry.end == entry.begin:
        return array
    stream.seek(header.data_start + entry.begin)
    view = memoryview(array.reshape(-1)).cast("B")  # type: ignore[arg-type]
    done, total = 0, entry.end - entry.begin
    while done < total:
        # Bounded reads: a buffered stream copies a request this large through no second buffer.
        count = stream.readinto(view[done:done + _CHUNK])  # type: ignore[attr-defined]
        if not count:
            raise ModelFileError(f"the file ended inside tensor {name!r}: read {done} of its {total} bytes "
                                 f"(the file shrank while it was read?)")
        done += count
    return array


def read(stream: BinaryIO, size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a whole safetensors file of `size` bytes: (tensors, metadata). Raises ModelFileError."""
    header = read_header(stream, size)
    return {name: read_tensor(stream, header, name) for name in header.entries}, dict(header.metadata)
