"""A small, strict reader and writer of the safetensors format, in numpy alone.

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object mapping each tensor
name to {"dtype", "shape", "data_offsets"}, plus an optional "__metadata__" map of strings), then the
tensors' raw little-endian bytes, offsets relative to the end of the header. The reader trusts
nothing: every length, offset, shape and name is checked against the bytes actually present before
anything is allocated, and the data region must be covered exactly, without holes or overlaps.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, BinaryIO

import numpy as np

from .errors import ModelFileError

__all__ = ["DTYPES", "MAX_HEADER_BYTES", "MAX_RANK", "header_bytes", "write", "read"]

# safetensors dtype code -> numpy dtype (little-endian). Only plain numeric types: no objects.
DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES = {dtype: code for code, dtype in DTYPES.items()}
# The reference implementation refuses headers over 100 MB; so does this one.
MAX_HEADER_BYTES = 100_000_000
MAX_RANK = 32
# Tensor names are plain identifiers with dots: nothing that reads as a path.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}")


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ModelFileError(
            f"tensor name {name!r} is not allowed; accepted: letters, digits, '_', '-' and single dots "
            f"(no path separators, no '..'), at most 255 characters")
    return name


def header_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> tuple[bytes, list[np.ndarray]]:
    """The length prefix and JSON header for `tensors`, and the little-endian arrays to write after it."""
    header: dict = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ModelFileError(f"metadata entry {key!r}: {type(value).__name__}; accepted: str -> str")
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
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        raise ModelFileError(f"the header repeats the keys {duplicated}; accepted: each key once")
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
        raise ModelFileError(f"{what} is not valid JSON ({error})") from None


def _int_list(value, name: str, field: str, length: int | None = None) -> list[int]:
    ok = isinstance(value, list) and (length is None or len(value) == length) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    if not ok:
        shape = f"{length} " if length else ""
        raise ModelFileError(f"tensor {name!r} has {field}={value!r}; accepted: a list of {shape}integers >= 0")
    return value


def read(stream: BinaryIO, size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a whole safetensors file of `size` bytes: (tensors, metadata). Raises ModelFileError."""
    if size < 8:
        raise ModelFileError(f"the file is {size} bytes long, too short for a safetensors header (8-byte length first)")
    n = int.from_bytes(stream.read(8), "little")
    if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
        raise ModelFileError(
            f"the header length field says {n} bytes; accepted: 2 to {min(MAX_HEADER_BYTES, size - 8)} "
            f"(the file has {size - 8} bytes after the length); truncated file or not a safetensors file")
    raw = stream.read(n)
    if len(raw) != n:
        raise ModelFileError(f"the file ended inside its header: read {len(raw)} of {n} bytes")
    if not raw.startswith(b"{"):
        raise ModelFileError(f"the header starts with {raw[:8]!r}; accepted: a JSON object starting with '{{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFileError(f"the header is not UTF-8 ({error})") from None
    header = parse_json(text, "the header")
    if not isinstance(header, dict):
        raise ModelFileError(f"the header is a {type(header).__name__}; accepted: a JSON object")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError("the header's __metadata__ is not a map of strings to strings")

    data_size = size - 8 - n
    entries = []
    for name, info in header.items():
        _check_name(name)
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            keys = sorted(info) if isinstance(info, dict) else type(info).__name__
            raise ModelFileError(f"tensor {name!r} has entry {keys}; accepted: exactly dtype, shape and data_offsets")
        code = info["dtype"]
        if not isinstance(code, str) or code not in DTYPES:
            raise ModelFileError(f"tensor {name!r} has dtype {code!r}; accepted: {', '.join(DTYPES)}")
        shape = _int_list(info["shape"], name, "shape")
        if len(shape) > MAX_RANK:
            raise ModelFileError(f"tensor {name!r} has rank {len(shape)}; accepted: at most {MAX_RANK}")
        begin, end = _int_list(info["data_offsets"], name, "data_offsets", 2)
        # Python integers: an absurd shape cannot overflow into a plausible size.
        nbytes = math.prod(shape) * DTYPES[code].itemsize
        if not begin <= end <= data_size:
            raise ModelFileError(
                f"tensor {name!r} has data_offsets [{begin}, {end}]; accepted: 0 <= begin <= end <= {data_size}, "
                f"the size of the data region")
        if end - begin != nbytes:
            raise ModelFileError(
                f"tensor {name!r} of dtype {code} and shape {shape} needs {nbytes} bytes; "
                f"its data_offsets [{begin}, {end}] span {end - begin}")
        entries.append((begin, end, name, code, shape))

    entries.sort()
    position = 0
    for begin, end, name, _, _ in entries:
        if begin != position:
            problem = ("overlaps the previous tensor" if begin < position
                       else f"leaves a hole of {begin - position} bytes")
            raise ModelFileError(f"tensor {name!r} starts at byte {begin}, which {problem}; "
                                 "accepted: tensors packed back to back")
        position = end
    if position != data_size:
        raise ModelFileError(
            f"the tensors cover {position} bytes but the data region has {data_size}; "
            f"accepted: a data region covered exactly (truncated file or trailing bytes)")

    data = stream.read(data_size)
    if len(data) != data_size:
        raise ModelFileError(f"the file ended inside its data: read {len(data)} of {data_size} bytes")
    tensors = {}
    for begin, end, name, code, shape in entries:
        dtype = DTYPES[code]
        if end == begin:
            tensors[name] = np.zeros(shape, dtype=dtype)
        else:
            tensors[name] = np.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize,
                                          offset=begin).reshape(shape).copy()
    return tensors, dict(metadata)
