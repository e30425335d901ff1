"""Crafted hostile Keras files (.keras archives, .weights.h5): each is refused by a ModelFileError naming
the file and the bad item, without executing, extracting or allocating beyond the file's size.

The corpus is built here, with zipfile, a raw zip writer (for what zipfile will not write: lying
sizes, flags, NUL names, repeated names) and h5py. A Keras-written file is parsed too when Keras is
installed.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import sys
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from polynn import _keras_archive, _keras_hdf5  # noqa: E402
from polynn._keras_archive import open_keras_file  # noqa: E402
from polynn.errors import (  # noqa: E402
    FileAccessError,
    MissingExtraError,
    ModelFileError,
    PolynnError,
    UnknownComponentError,
)
from polynn.models import load_model  # noqa: E402

MESSAGE_LIMIT = 1400
# Peak Python-heap growth (tracemalloc, which sees NumPy's and the BytesIO buffers, not HDF5's own
# mallocs) allowed when refusing a file, beyond a few times the file's own size.
PEAK_FLOOR = 4 * 2**20
TIME_LIMIT = 10.0
TB = 2**40


# ---- a Keras-like file, built without Keras ---------------------------------------------------


def keras_config(layers=None) -> dict:
    """A config.json as Keras 3.15 writes it for Sequential([Input((3,)), Dense(4, relu), Dense(1)])."""
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}

    def dense(name, units, activation):
        return {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
                "config": {"name": name, "trainable": True, "dtype": policy, "units": units, "activation": activation,
                           "use_bias": True,
                           "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                  "config": {"seed": None}, "registered_name": None},
                           "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                                "registered_name": None},
                           "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
                           "bias_constraint": None},
                "build_config": {"input_shape": [None, 3 if name == "dense" else 4]}}

    if layers is None:
        layers = [dense("dense", 4, "relu"), dense("dense_1", 1, "sigmoid")]
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "trainable": True, "dtype": policy,
                       "layers": [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                                   "config": {"batch_shape": [None, 3], "dtype": "float32", "sparse": False,
                                              "ragged": False, "name": "input_layer"}}] + layers,
                       "build_input_shape": [None, 3]},
            "build_config": {"input_shape": [None, 3]},
            "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                                             "config": {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9,
                                                        "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False},
                                             "registered_name": None},
                               "loss": "binary_crossentropy", "loss_weights": None, "metrics": ["accuracy"],
                               "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
                               "jit_compile": False}}


METADATA = {"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}
SHAPES = {"layers/dense/vars/0": (3, 4), "layers/dense/vars/1": (4,), "layers/dense_1/vars/0": (4, 1),
          "layers/dense_1/vars/1": (1,)}


def weights_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {path: rng.standard_normal(shape).astype("float32") for path, shape in SHAPES.items()}
    arrays["optimizer/vars/0"] = np.array(7, dtype="int64")
    arrays["optimizer/vars/1"] = np.array(0.001, dtype="float32")
    for i, shape in enumerate(SHAPES.values()):
        arrays[f"optimizer/vars/{2 + 2 * i}"] = rng.standard_normal(shape).astype("float32")
        arrays[f"optimizer/vars/{3 + 2 * i}"] = rng.random(shape).astype("float32")
    return arrays


def hdf5_bytes(build) -> bytes:
    """The bytes of an HDF5 file that build(h5py.File) fills."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def keras_layout(handle, arrays=None) -> None:
    """Keras's weights layout: layers/<name>/vars/<i>, optimizer/vars/<i>, vars; groups named by attrs."""
    arrays = weights_arrays() if arrays is None else arrays
    for path, array in arrays.items():
        handle.create_dataset(path, data=array)
    for group in ("layers/dense/vars", "layers/dense_1/vars", "optimizer/vars"):
        handle[group].attrs["name"] = group.split("/")[-2] if group.startswith("layers") else "adam"
    handle.create_group("vars").attrs["name"] = "sequential"


def weights_bytes(arrays=None) -> bytes:
    return hdf5_bytes(lambda handle: keras_layout(handle, arrays))


def archive_bytes(config=None, metadata=None, weights=None, extra=(), compression=zipfile.ZIP_STORED) -> bytes:
    """A .keras archive as Keras writes it (stored members, metadata first), plus `extra` members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        archive.writestr("metadata.json", json.dumps(METADATA if metadata is None else metadata))
        archive.writestr("config.json", config if isinstance(config, (str, bytes))
                         else json.dumps(keras_config() if config is None else config))
        archive.writestr("model.weights.h5", weights_bytes() if weights is None else weights)
        for name, data in extra:
            archive.writestr(name, data)
    return buffer.getvalue()


VALID_WEIGHTS = weights_bytes()
VALID_ARCHIVE = archive_bytes()


# ---- a raw zip writer: what zipfile refuses to write -------------------------------------------


def entry(name, content: bytes = b"{}", method: int = 0, **fields) -> dict:
    """A member for raw_zip: content compressed by `method` (0 stored, 8 deflate); `fields` override
    what the headers declare: size, csize, crc, flags, data (the bytes stored)."""
    if method == 8:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = packer.compress(content) + packer.flush()
    else:
        data = content
    member = {"name": name.encode() if isinstance(name, str) else name, "method": method, "flags": 0,
              "crc": zlib.crc32(content), "size": len(content), "data": data}
    member.update(fields)
    member.setdefault("csize", len(member["data"]))
    return member


def raw_zip(entries, *, count=None, disk=0) -> bytes:
    """A zip archive of `entries`, headers exactly as they say; the end record's member count and disk
    number may lie too."""
    out, directory = bytearray(), bytearray()
    for member in entries:
        offset, size, csize, extra = len(out), member["size"], member["csize"], b""
        if max(size, csize) >= 0xFFFFFFFF:  # zip64: the sizes go in an extra field
            extra, size, csize = struct.pack("<HHQQ", 1, 16, size, csize), 0xFFFFFFFF, 0xFFFFFFFF
        fixed = (45, member["flags"], member["method"], 0, 0x21, member["crc"], csize, size, len(member["name"]),
                 len(extra))
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", *fixed) + member["name"] + extra + member["data"]
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, *fixed, 0, 0, 0, 0o644 << 16,
                                 offset) + member["name"] + extra
    count = len(entries) if count is None else count
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", disk, disk, count, count, len(directory), len(out), 0)
    return bytes(out + directory + end)


def keras_entries(**replace) -> list[dict]:
    """The three members of a valid archive as raw entries; `replace` swaps one by name (None drops it)."""
    members = {"metadata.json": entry("metadata.json", json.dumps(METADATA).encode()),
               "config.json": entry("config.json", json.dumps(keras_config()).encode()),
               "model.weights.h5": entry("model.weights.h5", VALID_WEIGHTS)}
    for name, member in replace.items():
        members[name] = member
    return [member for member in members.values() if member is not None]


# ---- helpers ----------------------------------------------------------------------------------


def write(tmp_path, data: bytes, name: str = "hostile.keras"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def open_all(path) -> dict[str, np.ndarray]:
    with open_keras_file(path) as keras_file:
        return {name: keras_file.read(name) for name in keras_file.variables}


def refused(path, *items: str) -> str:
    """The message of the ModelFileError that opening (and reading) `path` raises, checked to name the
    file and each of `items`, bounded in length, and reached fast."""
    start = time.perf_counter()
    with pytest.raises(ModelFileError) as caught:
        open_all(path)
    assert time.perf_counter() - start < TIME_LIMIT
    message = str(caught.value)
    assert repr(str(path)) in message, message
    for item in items:
        assert item in message, (item, message)
    assert len(message) <= MESSAGE_LIMIT, message
    return message


def peak_refusing(path) -> int:
    """Peak traced allocation while `path` is refused."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ModelFileError):
            open_all(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- valid files -------------------------------------------------------------------------------


def test_a_keras_like_archive_parses(tmp_path):
    path = write(tmp_path, VALID_ARCHIVE)
    expected = weights_arrays()
    with open_keras_file(path) as keras_file:
        assert keras_file.kind == "archive"
        assert keras_file.config == keras_config()
        assert keras_file.metadata == METADATA
        assert list(keras_file.variables) == sorted(expected, key=lambda p: [int(s) if s.isdigit() else s
                                                                            for s in p.split("/")])
        for name, array in expected.items():
            variable = keras_file.variables[name]
            assert (variable.path, variable.shape, variable.dtype) == (name, array.shape, array.dtype.name)
            got = keras_file.read(name)
            assert got.dtype == array.dtype and got.shape == array.shape
            np.testing.assert_array_equal(got, array)
            got[...] = 0  # a copy: the next read is unchanged
            np.testing.assert_array_equal(keras_file.read(name), array)


def test_a_weights_file_parses_and_reads_big_endian_and_empty_data(tmp_path):
    def build(handle):
        keras_layout(handle)
        handle.create_dataset("layers/extra/vars/0", data=np.arange(6, dtype=">f8").reshape(2, 3))
        handle.create_dataset("layers/extra/vars/1", data=np.arange(4000, dtype="float32"))
        handle.create_dataset("layers/extra/vars/2", data=np.zeros((0, 5), dtype="float16"))

    path = write(tmp_path, hdf5_bytes(build), "model.weights.h5")
    with open_keras_file(path) as keras_file:
        assert (keras_file.kind, keras_file.config, keras_file.metadata) == ("weights", None, None)
        assert keras_file.variables["layers/extra/vars/0"].dtype == "float64"
        big = keras_file.read("layers/extra/vars/0")
        assert big.dtype == np.dtype("float64") and big.dtype.isnative
        np.testing.assert_array_equal(big, np.arange(6.0).reshape(2, 3))
        np.testing.assert_array_equal(keras_file.read("layers/extra/vars/1"), np.arange(4000, dtype="float32"))
        assert keras_file.read("layers/extra/vars/2").shape == (0, 5)
        np.testing.assert_array_equal(keras_file.read("optimizer/vars/0"), 7)


@pytest.mark.parametrize("options", [dict(chunks=(500,)), dict(compression="gzip", shuffle=True, fletcher32=True)])
def test_chunked_and_compressed_datasets_are_refused(tmp_path, options):
    # Keras writes every dataset contiguous and unfiltered; reading a damaged gzip-compressed dataset
    # crashed HDF5 itself (a segfault the fuzz found), so polynn reads only contiguous bytes, itself.
    def build(handle):
        keras_layout(handle)
        handle.create_dataset("layers/extra/vars/0", data=np.arange(4000, dtype="float32"), **options)

    refused(write(tmp_path, hdf5_bytes(build), "model.weights.h5"), "'layers/extra/vars/0'", "chunked dataset",
            "accepted: contiguous, unfiltered data")


def test_assets_are_checked_but_never_read(tmp_path):
    """Keras saves its preprocessing layers' files under assets/: polynn has none of those layers (the
    importer refuses them by their config), so the files are left unread, their names still checked."""
    path = write(tmp_path, archive_bytes(extra=[("assets/string_lookup/vocabulary.txt", b"a\nb\n")]))
    with open_keras_file(path) as keras_file:
        assert keras_file.kind == "archive"
    bad = raw_zip(keras_entries() + [entry("assets/../../../etc/cron.d/x", b"boom")])
    refused(write(tmp_path, bad, "traversal_asset.keras"), "assets/../../../etc/cron.d/x")


def test_a_deflated_archive_parses(tmp_path):
    path = write(tmp_path, archive_bytes(compression=zipfile.ZIP_DEFLATED))
    assert open_all(path).keys() == weights_arrays().keys()


# ---- member names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/abs", "/config.json", "a\\b", "..\\..\\x",
                                  "C:/x", "c:config.json", "assets//x", "./config.json", "assets/./x", "",
                                  "assets/\x1b[2Jx", "x" * 2000])
def test_member_names_that_could_escape_or_deceive_are_refused(tmp_path, name):
    path = write(tmp_path, raw_zip(keras_entries() + [entry(name, b"data")]))
    message = refused(path, "member named")
    if len(name) < 100:
        assert repr(name) in message


def test_a_member_name_with_a_nul_is_refused(tmp_path):
    """zipfile cuts a name at a NUL: 'config.json\\0.exe' would be read as config.json otherwise."""
    members = keras_entries(**{"config.json": entry(b"config.json\0.exe", json.dumps(keras_config()).encode())})
    refused(write(tmp_path, raw_zip(members)), "config.json\\x00.exe")


@pytest.mark.parametrize("name", ["config.json", "metadata.json", "model.weights.h5", "assets/a.txt"])
def test_a_member_repeated_is_refused(tmp_path, name):
    members = keras_entries() + [entry(name, b"{}")] * (2 if name.startswith("assets/") else 1)
    refused(write(tmp_path, raw_zip(members)), repr(name), "twice")


@pytest.mark.parametrize("name", ["evil.py", "model.weights.h5/", "Config.json", "config.json.bak", "__MACOSX/x"])
def test_a_member_keras_does_not_write_is_refused(tmp_path, name):
    refused(write(tmp_path, raw_zip(keras_entries() + [entry(name, b"x")])), repr(name), "Keras does not write")


def test_npz_weights_are_refused_by_name(tmp_path):
    members = keras_entries(**{"model.weights.h5": None}) + [entry("model.weights.npz", b"PK")]
    refused(write(tmp_path, raw_zip(members)), "npz")


@pytest.mark.parametrize("missing", ["config.json", "metadata.json", "model.weights.h5"])
def test_a_missing_member_is_refused(tmp_path, missing):
    refused(write(tmp_path, raw_zip(keras_entries(**{missing: None}))), repr(missing), "no member")


def test_too_many_members_are_refused_before_parsing(tmp_path, monkeypatch):
    members = keras_entries() + [entry(f"assets/{i}", b"") for i in range(40)]
    monkeypatch.setattr(_keras_archive, "MAX_MEMBERS", 16)
    refused(write(tmp_path, raw_zip(members)), "43 members")
    # The end record's count is what is checked first: a lie there is refused before zipfile reads.
    refused(write(tmp_path, raw_zip(keras_entries(), count=60000), "lying.keras"), "60000 members")


def test_a_multi_part_archive_is_refused(tmp_path):
    refused(write(tmp_path, raw_zip(keras_entries(), disk=2)), "multi-part")


# ---- member flags, methods, sizes, checksums ------------------------------------------------------


@pytest.mark.parametrize("flags", [0x1, 0x41])
def test_an_encrypted_member_is_refused(tmp_path, flags):
    members = keras_entries(**{"config.json": entry("config.json", b"{}", flags=flags)})
    refused(write(tmp_path, raw_zip(members)), "'config.json'", "encrypted")


@pytest.mark.parametrize("method", [1, 9, 12, 14, 93, 99])
def test_compression_other_than_stored_or_deflate_is_refused(tmp_path, method):
    members = keras_entries(**{"model.weights.h5": entry("model.weights.h5", VALID_WEIGHTS, method=method)})
    refused(write(tmp_path, raw_zip(members)), "'model.weights.h5'", f"method {method}")


def test_a_bad_crc_is_refused(tmp_path):
    data = json.dumps(keras_config()).encode()
    for method in (0, 8):
        members = keras_entries(**{"config.json": entry("config.json", data, method=method, crc=zlib.crc32(data) ^ 1)})
        refused(write(tmp_path, raw_zip(members), f"crc{method}.keras"), "'config.json'", "CRC")


def test_a_stored_member_whose_sizes_differ_is_refused(tmp_path):
    members = keras_entries(**{"config.json": entry("config.json", b"{}", size=1)})
    refused(write(tmp_path, raw_zip(members)), "'config.json'", "stored uncompressed")


def test_a_member_shorter_than_declared_is_refused(tmp_path):
    data = json.dumps(keras_config()).encode()
    members = keras_entries(**{"config.json": entry("config.json", data[:-10], method=8, size=len(data),
                                                    crc=zlib.crc32(data))})
    refused(write(tmp_path, raw_zip(members)), "'config.json'")


def test_oversized_json_members_are_refused_on_their_declared_size(tmp_path):
    for name, limit in (("config.json", _keras_archive.MAX_JSON_BYTES),
                        ("metadata.json", _keras_archive.MAX_METADATA_BYTES)):
        members = keras_entries(**{name: entry(name, b"{}", method=8, size=limit + 1)})
        path = write(tmp_path, raw_zip(members), f"big_{name}.keras")
        refused(path, repr(name), f"declares {limit + 1} bytes")
        assert peak_refusing(path) < PEAK_FLOOR


def zeros_deflated(size: int) -> tuple[bytes, int]:
    """`size` zero bytes, raw-deflated (about a thousandth of the size), and their CRC-32."""
    packer, chunk, crc, out = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(2**20), 0, []
    for _ in range(size // len(chunk)):
        out.append(packer.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    out.append(packer.flush())
    return b"".join(out), crc


def test_a_zip_bomb_declaring_a_huge_size_is_refused_without_allocating(tmp_path):
    data, crc = zeros_deflated(8 * 2**20)
    members = keras_entries(**{"model.weights.h5": entry("model.weights.h5", method=8, data=data, crc=crc, size=TB)})
    path = write(tmp_path, raw_zip(members))
    refused(path, "'model.weights.h5'", f"declares {TB} bytes")
    assert peak_refusing(path) < PEAK_FLOOR


def test_a_highly_compressed_member_is_refused_on_its_ratio(tmp_path):
    size = 64 * 2**20
    data, crc = zeros_deflated(size)
    members = keras_entries(**{"model.weights.h5": entry("model.weights.h5", method=8, data=data, crc=crc, size=size)})
    path = write(tmp_path, raw_zip(members))
    refused(path, "'model.weights.h5'", "zip bomb")
    assert peak_refusing(path) < PEAK_FLOOR + 4 * path.stat().st_size


def test_a_member_decompressing_past_its_declared_size_stops_there(tmp_path):
    """A bomb lying low about its size: decompression stops at the declared size (and the CRC fails)."""
    data, _ = zeros_deflated(256 * 2**20)
    members = keras_entries(**{"model.weights.h5": entry("model.weights.h5", method=8, data=data,
                                                         crc=zlib.crc32(bytes(4096)), size=4096)})
    path = write(tmp_path, raw_zip(members))
    refused(path, "'model.weights.h5'")
    assert peak_refusing(path) < PEAK_FLOOR + 4 * path.stat().st_size


def test_a_member_extending_past_the_archive_is_refused(tmp_path):
    members = keras_entries(**{"config.json": entry("config.json", b"{}", csize=2**31, size=2**31)})
    refused(write(tmp_path, raw_zip(members)), "'config.json'")


# ---- truncated and foreign files ---------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.01, 0.1, 0.3, 0.5, 0.8, 0.95, 0.99, -1, -21, -22, -23, -50])
def test_a_truncated_archive_is_refused(tmp_path, keep):
    cut = int(len(VALID_ARCHIVE) * keep) if keep > 0 else len(VALID_ARCHIVE) + keep
    refused(write(tmp_path, VALID_ARCHIVE[:cut]))


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.9, -1])
def test_a_truncated_weights_file_is_refused(tmp_path, keep):
    cut = int(len(VALID_WEIGHTS) * keep) if keep > 0 else len(VALID_WEIGHTS) + keep
    refused(write(tmp_path, VALID_WEIGHTS[:cut], "model.weights.h5"))


@pytest.mark.parametrize("data", [b"", b"PK", b"not a keras file", b"PK\x03\x04" + bytes(100), b"\x89HDF\r\n\x1a\n",
                                  b"\x89HDF\r\n\x1a\n" + os.urandom(2000), b"\x93NUMPY", b"\x80\x04\x95pickle"])
def test_files_that_are_not_keras_files_are_refused(tmp_path, data):
    refused(write(tmp_path, data))


def test_a_zip_that_is_not_a_keras_archive_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    refused(write(tmp_path, buffer.getvalue()), "'readme.txt'")


def test_a_legacy_keras_2_hdf5_file_is_refused_as_such(tmp_path):
    def build(handle):
        handle.attrs["model_config"] = json.dumps(keras_config())
        handle.create_dataset("model_weights/dense/dense/kernel:0", data=np.ones((3, 4), "float32"))

    refused(write(tmp_path, hdf5_bytes(build), "legacy.h5"), "legacy Keras 2")


def test_files_that_cannot_be_opened_are_refused(tmp_path):
    with pytest.raises(FileAccessError, match="missing.keras"):
        open_all(tmp_path / "missing.keras")
    with pytest.raises(ModelFileError, match="directory"):
        open_all(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.keras"
        os.mkfifo(fifo)
        with pytest.raises(ModelFileError, match="FIFO"):  # and never blocks waiting for a writer
            open_all(fifo)


# ---- JSON members ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "item"), [
    (b"{", "not valid JSON"),
    (b"", "not valid JSON"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": -Infinity}', "-Infinity"),
    (b'{"a": 1e999}', "1e999"),
    (b'{"a": 1, "a": 2}', "['a']"),
    (b'{"layers": [{"x": 1, "y": 2, "x": 3}]}', "['x']"),
    (b"[1, 2]", "list"),
    (b'"config"', "str"),
    (b"\xef\xbb\xbf{}", "not valid JSON"),
    (b'{"a": "\xff"}', "UTF-8"),
    (b'{"a": ' + b"9" * 5000 + b"}", "5000 digits"),
    (b'{"a": -' + b"9" * 65 + b"}", "65 digits"),
    (b"[" * 65 + b"]" * 65, "nests more than 64"),
    (b'{"a":' * 200 + b"1" + b"}" * 200, "nests more than 64"),
    (b"[" * 200000 + b"]" * 200000, "nests more than 64"),
])
@pytest.mark.parametrize("member", ["config.json", "metadata.json"])
def test_json_members_are_strict(tmp_path, member, text, item):
    members = keras_entries(**{member: entry(member, text)})
    refused(write(tmp_path, raw_zip(members)), repr(member), item)


def test_json_nested_to_the_limit_parses(tmp_path):
    config = {**keras_config(), "deep": json.loads("[" * 62 + "]" * 62)}
    with open_keras_file(write(tmp_path, archive_bytes(config=config))) as keras_file:
        assert keras_file.config == config


# ---- code in the config: parsed, never run (the importer refuses these names) ------------------------


MARKER = "polynn_keras_marker"


def _marshalled_lambda(folder) -> str:
    """What Keras writes for Lambda(lambda x: ...): the function's marshalled code, base64; this one
    would create the marker file if anything unmarshalled and ran it."""
    import base64
    import marshal

    target = os.path.join(str(folder), MARKER)

    def payload(x):
        open(target, "w").close()
        return x

    return base64.b64encode(marshal.dumps(payload.__code__)).decode()


@pytest.fixture
def no_code_runs(monkeypatch, tmp_path):
    calls = []
    for name in ("system", "popen", "execv", "execvp"):
        monkeypatch.setattr(os, name, lambda *a, _n=name, **k: calls.append((_n, a)))
    yield calls
    assert calls == []
    assert not (tmp_path / MARKER).exists()


def test_a_lambda_layer_config_is_returned_as_data_and_never_run(tmp_path, no_code_runs):
    lambda_layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                    "config": {"name": "lambda", "trainable": True, "dtype": "float32",
                               "function": {"class_name": "__lambda__",
                                            "config": {"code": _marshalled_lambda(tmp_path), "defaults": None,
                                                       "closure": None}},
                               "output_shape": None, "mask": None, "arguments": {}}}
    config = keras_config(layers=[lambda_layer])
    path = write(tmp_path, archive_bytes(config=config))
    with open_keras_file(path) as keras_file:
        assert keras_file.config == config
        assert keras_file.config["config"]["layers"][1]["class_name"] == "Lambda"
    # End to end: load_model refuses the layer by name; nothing is unmarshalled.
    with pytest.raises(PolynnError, match=r"hostile\.keras.*Lambda") as error:
        load_model(path)
    assert isinstance(error.value, (ModelFileError, UnknownComponentError))


def test_a_custom_object_naming_os_system_is_returned_as_data_and_never_run(tmp_path, no_code_runs):
    config = keras_config()
    marker = str(tmp_path / MARKER)
    config["config"]["layers"][1]["config"]["activation"] = {
        "module": "os", "class_name": "system", "config": {"command": f"touch {marker}"},
        "registered_name": "os>system"}
    config["config"]["layers"][2] = {"module": "os", "class_name": "system", "registered_name": "os.system",
                                     "config": f"touch {marker}"}
    path = write(tmp_path, archive_bytes(config=config))
    with open_keras_file(path) as keras_file:
        assert keras_file.config == config
    # End to end: load_model refuses the module; nothing is imported or called.
    with pytest.raises(ModelFileError, match=r"hostile\.keras.*'os'"):
        load_model(path)


# ---- the weights HDF5 ---------------------------------------------------------------------------


def huge_chunked(handle):
    keras_layout(handle)
    handle.create_dataset("layers/dense/vars/2", shape=(TB // 4,), dtype="float32", chunks=(2**16,), fillvalue=1.0)


def huge_contiguous(handle):
    keras_layout(handle)
    handle.create_dataset("layers/dense/vars/2", shape=(2**20, 2**18), dtype="float64")


def huge_compressed(handle):
    keras_layout(handle)
    data = handle.create_dataset("layers/dense/vars/2", shape=(2**15, 2**15), dtype="float64", chunks=(2**7, 2**10),
                                 compression="gzip", fillvalue=0.0)
    data[:2**7, :2**10] = 0.0  # one chunk stored: a few hundred bytes declaring 8 GiB


@pytest.mark.parametrize("build", [huge_chunked, huge_contiguous, huge_compressed])
@pytest.mark.parametrize("container", ["weights", "archive"])
def test_a_huge_declared_dataset_is_refused_before_reading(tmp_path, build, container):
    hdf5 = hdf5_bytes(build)
    assert len(hdf5) < 2**20
    data = hdf5 if container == "weights" else archive_bytes(weights=hdf5)
    path = write(tmp_path, data, "huge.weights.h5" if container == "weights" else "huge.keras")
    # A chunked dataset is refused as such (only contiguous data is read); a contiguous one on its size.
    why = "declares" if build is huge_contiguous else "chunked dataset"
    refused(path, "'layers/dense/vars/2'", why)
    with pytest.raises(ModelFileError, match=why):  # on opening, before any read
        with open_keras_file(path):
            pass
    assert peak_refusing(path) < PEAK_FLOOR + 4 * len(data)


def _external_link(handle):
    keras_layout(handle)
    handle["layers/dense/vars/2"] = h5py.ExternalLink("/etc/passwd", "/x")


def _soft_link(handle):
    keras_layout(handle)
    handle["layers/dense/vars/2"] = h5py.SoftLink("/layers/dense/vars/0")


def _dangling_soft_link(handle):
    keras_layout(handle)
    handle["layers/dense/vars/2"] = h5py.SoftLink("/nowhere")


def _hard_alias(handle):
    keras_layout(handle)
    handle["layers/dense/vars/2"] = handle["layers/dense/vars/0"]


def _cycle(handle):
    keras_layout(handle)
    handle["layers/dense/vars/2"] = handle["layers"]


def _committed(handle):
    keras_layout(handle)
    handle["layers/dense/vars/2"] = np.dtype("float32")


def _dataset(dtype, data=None, **kw):
    def build(handle):
        keras_layout(handle)
        handle.create_dataset("layers/dense/vars/2", data=data if data is not None else np.zeros(3, dtype), dtype=dtype,
                              **kw)
    return build


def _committed_type_dataset(handle):
    keras_layout(handle)
    handle["layers/dense/vars/t"] = np.dtype("float32")
    handle.create_dataset("layers/dense/vars/2", shape=(3,), dtype=handle["layers/dense/vars/t"])


def _reference(handle):
    keras_layout(handle)
    handle.create_dataset("layers/dense/vars/2", data=np.array([handle["layers"].ref]), dtype=h5py.ref_dtype)


def _null(handle):
    keras_layout(handle)
    handle.create_dataset("layers/dense/vars/2", data=h5py.Empty("float32"))


def _virtual(handle):
    keras_layout(handle)
    layout = h5py.VirtualLayout(shape=(3, 4), dtype="float32")
    layout[:] = h5py.VirtualSource("other.h5", "data", shape=(3, 4))
    handle.create_virtual_dataset("layers/dense/vars/2", layout)


def _external_storage(handle):
    keras_layout(handle)
    handle.create_dataset("layers/dense/vars/2", shape=(4,), dtype="float32",
                          external=[("/etc/passwd", 0, h5py.h5f.UNLIMITED)])


def _deep(handle):
    keras_layout(handle)
    handle.create_group("/".join(["layers"] + ["g"] * 40))


def _bad_name(handle):
    keras_layout(handle)
    handle.create_dataset("layers/dense/vars/\x1b[31mred", data=np.zeros(2, "float32"))


def _big_chunks(handle):
    keras_layout(handle)
    handle.create_dataset("layers/dense/vars/2", shape=(4,), maxshape=(None,), chunks=(2**26,), dtype="float32",
                          data=np.zeros(4, "float32"))


HOSTILE_HDF5 = {
    "external link": (_external_link, "external link"),
    "soft link": (_soft_link, "soft link"),
    "dangling soft link": (_dangling_soft_link, "soft link"),
    "hard-linked alias": (_hard_alias, "linked from 2 places"),
    "cycle": (_cycle, "linked from 2 places"),
    "committed datatype": (_committed, "named (committed) datatype"),
    "dataset of a committed type": (_committed_type_dataset, "named (committed) datatype"),
    "compound": (_dataset(np.dtype([("a", "f4"), ("b", "i4")])), "class compound"),
    "vlen string": (_dataset(h5py.string_dtype(), data=np.array(["a", "b"], dtype=object)), "class string"),
    "fixed string": (_dataset("S4", data=np.array([b"abcd"])), "class string"),
    "vlen float": (_dataset(h5py.vlen_dtype("float32"), data=np.array([np.zeros(2, "f4")] + [np.zeros(3, "f4")],
                                                                        dtype=object)), "class vlen"),
    "object reference": (_reference, "class reference"),
    "bool (an enum)": (_dataset("bool", data=np.array([True, False])), "class enum"),
    "complex": (_dataset("complex64"), "class compound"),
    "float128": (_dataset("float128") if hasattr(np, "float128") else _dataset("float32x"), "class float"),
    "null dataspace": (_null, "null dataset"),
    "virtual dataset": (_virtual, "virtual dataset"),
    "external storage": (_external_storage, "external files"),
    # Filters need chunks, and chunked data is refused before any filter could load a plugin.
    "lzf filter": (_dataset("float32", compression="lzf"), "chunked dataset"),
    "scaleoffset filter": (_dataset("float32", scaleoffset=2), "chunked dataset"),
    "chunks larger than the data": (_big_chunks, "chunked dataset"),
    "too deep": (_deep, "nests more than"),
    "control characters in a name": (_bad_name, "name that is not allowed"),
}


@pytest.mark.parametrize("case", list(HOSTILE_HDF5))
def test_hostile_hdf5_structures_are_refused(tmp_path, case):
    build, item = HOSTILE_HDF5[case]
    try:
        hdf5 = hdf5_bytes(build)
    except (TypeError, ValueError) as error:  # this h5py or NumPy cannot write the case
        pytest.skip(f"cannot build {case}: {error}")
    refused(write(tmp_path, hdf5, "hostile.weights.h5"), item)
    refused(write(tmp_path, archive_bytes(weights=hdf5), "hostile.keras"), item, "'model.weights.h5'")


def test_too_many_links_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(_keras_hdf5, "MAX_LINKS", 20)
    refused(write(tmp_path, VALID_WEIGHTS, "model.weights.h5"), "more than 20 links")


def test_integer_variables_are_listed_for_the_importer_to_judge(tmp_path):
    """Keras writes int64 iterations and, for seed generators and quantized layers, other integer
    variables: listed with their dtype; which it accepts is the importer's choice."""
    path = write(tmp_path, hdf5_bytes(_dataset("uint32", data=np.array([1, 2], "uint32"))), "w.weights.h5")
    with open_keras_file(path) as keras_file:
        assert keras_file.variables["layers/dense/vars/2"].dtype == "uint32"
        np.testing.assert_array_equal(keras_file.read("layers/dense/vars/2"), [1, 2])


# ---- read() and the context ----------------------------------------------------------------------


def test_read_names_the_file_for_an_unknown_variable_and_after_closing(tmp_path):
    path = write(tmp_path, VALID_ARCHIVE)
    with open_keras_file(path) as keras_file:
        for bad in ("layers/nope", "layers", "/layers/dense/vars/0", 3):
            with pytest.raises(ModelFileError, match=re.escape(repr(str(path)))):
                keras_file.read(bad)
    with pytest.raises(ModelFileError, match="closed"):
        keras_file.read("layers/dense/vars/0")


def test_errors_of_the_with_block_pass_through_unchanged(tmp_path):
    class MineError(Exception):
        pass

    with pytest.raises(MineError):
        with open_keras_file(write(tmp_path, VALID_ARCHIVE)):
            raise MineError()


def test_without_h5py_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'polynn[keras-files]'")):
        open_all(write(tmp_path, VALID_ARCHIVE))


def test_messages_stay_bounded_for_long_names(tmp_path):
    long_name = "x" * 200 + ".keras"
    path = write(tmp_path, raw_zip(keras_entries() + [entry("y" * 1000, b"")]), long_name)
    with pytest.raises(ModelFileError) as caught:
        open_all(path)
    assert len(str(caught.value)) <= MESSAGE_LIMIT and "xxxx" in str(caught.value)


# ---- a file Keras wrote ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A .keras archive and a .weights.h5 file Keras 3 wrote after a little training (TensorFlow backend,
    as tests/test_keras_parity.py uses)."""
    if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("these tests use Keras on TensorFlow; KERAS_BACKEND names another backend")
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((20, 3))
    model.fit(x, (x.sum(1) > 1.5).astype("float32"), epochs=1, verbose=0)
    model.save(folder / "m.keras")
    model.save_weights(folder / "m.weights.h5")
    return folder / "m.keras", folder / "m.weights.h5"


def test_a_file_keras_wrote_parses(keras_files):
    archive, weights = keras_files
    with zipfile.ZipFile(archive) as raw:
        expected_config = json.loads(raw.read("config.json"))
        expected_metadata = json.loads(raw.read("metadata.json"))
        hdf5 = raw.read("model.weights.h5")
    with h5py.File(io.BytesIO(hdf5), "r") as handle:
        expected = {}
        handle.visititems(lambda name, item: expected.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    assert "layers/dense/vars/0" in expected and "optimizer/vars/0" in expected
    for path, kind in ((archive, "archive"), (weights, "weights")):
        with open_keras_file(path) as keras_file:
            assert keras_file.kind == kind
            if kind == "archive":
                assert (keras_file.config, keras_file.metadata) == (expected_config, expected_metadata)
            assert set(keras_file.variables) == set(expected)
            for name, value in expected.items():
                variable = keras_file.variables[name]
                assert variable.shape == value.shape and variable.dtype == value.dtype.name
                got = keras_file.read(name)
                assert got.dtype == value.dtype
                np.testing.assert_array_equal(got, value)
