"""Fuzzed Keras files: every mutation of a valid .keras archive or .weights.h5 file opens as a clean
KerasFile (each variable reads as declared) or is refused by a ModelFileError naming the file; never
another exception, never a hang.

Four targets: the archive's bytes, the weights file's bytes, and the HDF5 member or config.json
mutated inside an archive rebuilt around them (so their CRC holds and the mutation reaches h5py and
the JSON parser rather than the zip checks).
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("h5py")

from test_keras_files_hostile import (  # noqa: E402
    MESSAGE_LIMIT,
    METADATA,
    archive_bytes,
    hdf5_bytes,
    keras_config,
    keras_layout,
)

from polynn._keras_archive import open_keras_file  # noqa: E402
from polynn.errors import ModelFileError  # noqa: E402

TIME_LIMIT = 10.0


def _fuzz_layout(handle) -> None:
    """Keras's layout, plus a big-endian float64 dataset. (A gzip-compressed, shuffled, checksummed one
    was here until a mutation of it crashed HDF5 itself; chunked data is refused now.)"""
    keras_layout(handle)
    handle.create_dataset("layers/extra/vars/0", data=np.linspace(-1, 1, 600, dtype=">f8").reshape(20, 30))


WEIGHTS = hdf5_bytes(_fuzz_layout)
CONFIG = json.dumps(keras_config()).encode()
ARCHIVE = archive_bytes(weights=WEIGHTS)


def _rezip(config: bytes = CONFIG, weights: bytes = WEIGHTS) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps(METADATA))
        archive.writestr("config.json", config)
        archive.writestr("model.weights.h5", weights)
    return buffer.getvalue()


@st.composite
def _mutated(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate"]))
        if kind == "flip":
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "set":
            value = draw(st.sampled_from([b"\x00" * 4, b"\xff" * 4, b"\x7f\xff\xff\xff", b"\x00\x00\x00\x80",
                                          b"\x01", b"\xff\xff\xff\xff\xff\xff\xff\xff"]))
            out[at:at + len(value)] = value
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del out[at:]
    return bytes(out)


TARGETS = {
    "archive": (".keras", _mutated(ARCHIVE)),
    "weights": (".weights.h5", _mutated(WEIGHTS)),
    "hdf5 member": (".keras", _mutated(WEIGHTS).map(lambda weights: _rezip(weights=weights))),
    "config member": (".keras", _mutated(CONFIG).map(lambda config: _rezip(config=config))),
}


def check_outcome(tmp_path, suffix: str, data: bytes) -> None:
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        with open_keras_file(path) as keras_file:
            assert keras_file.kind in ("archive", "weights")
            for name, variable in keras_file.variables.items():
                array = keras_file.read(name)
                assert isinstance(array, np.ndarray)
                assert (array.shape, array.dtype.name) == (variable.shape, variable.dtype)
    except ModelFileError as error:
        message = str(error)
        assert repr(str(path)) in message and len(message) <= MESSAGE_LIMIT, message
    assert time.perf_counter() - start < TIME_LIMIT


def test_the_unmutated_files_open(tmp_path):
    for suffix, data in ((".keras", ARCHIVE), (".weights.h5", WEIGHTS), (".keras", _rezip())):
        path = tmp_path / f"valid{suffix}"
        path.write_bytes(data)
        with open_keras_file(path) as keras_file:
            np.testing.assert_array_equal(keras_file.read("layers/extra/vars/0"),
                                          np.linspace(-1, 1, 600).reshape(20, 30))


@pytest.mark.parametrize("target", list(TARGETS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_keras_files_open_cleanly_or_raise_model_file_errors(tmp_path, target, data):
    suffix, strategy = TARGETS[target]
    check_outcome(tmp_path, suffix, data.draw(strategy))


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_keras_files_open_cleanly_or_raise_model_file_errors_long_run(tmp_path, target, data):
    suffix, strategy = TARGETS[target]
    check_outcome(tmp_path, suffix, data.draw(strategy))
