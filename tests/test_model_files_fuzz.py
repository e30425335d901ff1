"""Hostile model files: every malformed or malicious file raises a polynn error and runs nothing."""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polynn.errors import ModelFileError, PolynnError, UnknownComponentError
from polynn.layers import Dense, Dropout
from polynn.models import Sequential, load_model

MARKER = "polynn_fuzz_marker_file"


class Payload:
    """Unpickling this would create the marker file: proof that nothing was unpickled."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        return (open, (os.path.join(self.folder, MARKER), "w"))


def valid_file_bytes(dtype="float64") -> bytes:
    model = Sequential([Dense(3, input_dim=2, activation="relu"), Dropout(0.5), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], dtype=dtype, seed=1)
    model.fit(np.eye(2), np.array([[0.0], [1.0]]), epochs=1, verbose=0)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.safetensors")
        model.save(path)
        with open(path, "rb") as stream:
            return stream.read()


VALID = valid_file_bytes()


def split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def edit_doc(data: bytes, key: str, change) -> bytes:
    header, body = split(data)
    doc = json.loads(header["__metadata__"][key])
    doc = change(doc)
    header["__metadata__"][key] = json.dumps(doc)
    return join(header, body)


def edit_header(data: bytes, change) -> bytes:
    header, body = split(data)
    change(header)
    return join(header, body)


def load_bytes(tmp_path, data: bytes):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(data)
    return load_model(path)


def first_tensor(header):
    return next(name for name in header if name != "__metadata__")


def set_first_layer_activation(name):
    def change(doc):
        doc["config"]["layers"][0]["config"]["activation"] = name
        return doc
    return change


def set_offsets(name_index, offsets):
    def change(header):
        names = sorted((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"][0])
        header[names[name_index]]["data_offsets"] = offsets(header[names[name_index]]["data_offsets"])
    return change


HOSTILE = {
    "empty": b"",
    "seven bytes": VALID[:7],
    "truncated in header": VALID[:40],
    "truncated in data": VALID[:-3],
    "trailing bytes": VALID + b"\0" * 8,
    "header length absurd": struct.pack("<Q", 2**63) + VALID[8:],
    "header length past end": struct.pack("<Q", len(VALID)) + VALID[8:],
    "header not json": struct.pack("<Q", 8) + b"{not js}",
    "header not utf-8": struct.pack("<Q", 8) + b"{\xff\xfe\xfd  }",
    "header a list": struct.pack("<Q", 8) + b"[1,2,3] ",
    "json nan": edit_header(VALID, lambda h: h.__setitem__("x", 0)).replace(b'"x": 0', b'"x": NaN'),
    "duplicate key": VALID.replace(b'"format_version"', b'"format"', 1),
    "wrong magic": edit_header(VALID, lambda h: h["__metadata__"].__setitem__("format", "keras")),
    "no metadata": edit_header(VALID, lambda h: h.pop("__metadata__")),
    "future version": edit_header(VALID, lambda h: h["__metadata__"].__setitem__("format_version", "2")),
    "extra metadata key": edit_header(VALID, lambda h: h["__metadata__"].__setitem__("code", "print(1)")),
    "metadata not strings": edit_header(VALID, lambda h: h["__metadata__"].__setitem__("format_version", 1)),
    "shape not the spec": edit_header(VALID, lambda h: h.update({
        "weights.dense.kernel": {**h["weights.dense.kernel"], "shape": [3, 2]}})),
    "dtype not the spec": edit_header(VALID, lambda h: h.update({
        "weights.dense.bias": {**h["weights.dense.bias"], "dtype": "I64"}})),
    "object dtype": edit_header(VALID, lambda h: h.update({
        "weights.dense.bias": {**h["weights.dense.bias"], "dtype": "O"}})),
    "absurd shape": edit_header(VALID, lambda h: h.update({
        "weights.dense.bias": {**h["weights.dense.bias"], "shape": [2**40, 2**40]}})),
    "negative shape": edit_header(VALID, lambda h: h.update({
        "weights.dense.bias": {**h["weights.dense.bias"], "shape": [-3]}})),
    "overlapping offsets": edit_header(VALID, set_offsets(1, lambda o: [o[0] - 8, o[1] - 8])),
    "out-of-bounds offsets": edit_header(VALID, set_offsets(-1, lambda o: [o[0] + 8, o[1] + 8])),
    "reversed offsets": edit_header(VALID, set_offsets(0, lambda o: [o[1], o[0]])),
    "missing tensor": edit_header(VALID, lambda h: h.pop("optimizer.dense.kernel.m")),
    "unexpected tensor": edit_header(VALID, lambda h: h.update(
        {"weights.dense.extra": {"dtype": "F64", "shape": [0], "data_offsets": [0, 0]}})),
    "path traversal name": edit_header(VALID, lambda h: h.update(
        {"../../etc/passwd": h.pop("weights.dense.bias")})),
    "absolute path name": edit_header(VALID, lambda h: h.update({"/tmp/x": h.pop("weights.dense.bias")})),
    "module path class": edit_doc(VALID, "model", lambda d: {
        **d, "config": {**d["config"], "layers": [{"class_name": "os.system", "config": {}}]}}),
    "module path activation": edit_doc(VALID, "model", set_first_layer_activation("builtins.eval")),
    "module path optimizer": edit_doc(VALID, "compile", lambda d: {**d, "optimizer": "subprocess.Popen"}),
    "module path metric": edit_doc(VALID, "compile", lambda d: {**d, "metrics": ["os.system"]}),
    "bad layer config": edit_doc(VALID, "model", lambda d: json.loads(
        json.dumps(d).replace('"units": 3', '"units": -3'))),
    "unknown layer config key": edit_doc(VALID, "model", lambda d: json.loads(
        json.dumps(d).replace('"units": 3', '"units": 3, "__class__": 1'))),
    "input shape contradicts": edit_doc(VALID, "model", lambda d: {**d, "input_shape": [5]}),
    "iterations negative": edit_doc(VALID, "state", lambda d: {**d, "iterations": -1}),
    "seed not int": edit_doc(VALID, "state", lambda d: {**d, "seed": "7"}),
    "learning rate nan-ish": edit_doc(VALID, "state", lambda d: {**d, "learning_rate": "inf"}),
    "recorded dtype": edit_doc(VALID, "info", lambda d: {**d, "dtype": "object"}),
    "deep nesting": edit_header(VALID, lambda h: h["__metadata__"].__setitem__("model", "[" * 100000 + "]" * 100000)),
}
UNKNOWN = {
    "unknown layer": edit_doc(VALID, "model", lambda d: {
        **d, "config": {**d["config"], "layers": [{"class_name": "no_such_layer", "config": {}}]}}),
    "unknown activation": edit_doc(VALID, "model", set_first_layer_activation("no_such_activation")),
    "unknown loss": edit_doc(VALID, "compile", lambda d: {**d, "loss": "no_such_loss"}),
}


def test_the_valid_file_loads(tmp_path):
    assert load_bytes(tmp_path, VALID).iterations == 1


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_raises_model_file_error(tmp_path, case):
    with pytest.raises(ModelFileError) as caught:
        load_bytes(tmp_path, HOSTILE[case])
    assert str(caught.value)


@pytest.mark.parametrize("case", sorted(UNKNOWN))
def test_unknown_component_raises_unknown_component_error(tmp_path, case):
    with pytest.raises(UnknownComponentError, match="no_such"):
        load_bytes(tmp_path, UNKNOWN[case])


def test_pickle_payloads_are_never_unpickled(tmp_path):
    raw_pickle = pickle.dumps(Payload(tmp_path))
    np_object = tmp_path / "object.npy"
    np.save(np_object, np.array([Payload(tmp_path)], dtype=object), allow_pickle=True)
    in_metadata = edit_doc(VALID, "model", lambda d: {
        **d, "config": base64.b64encode(raw_pickle).decode()})
    in_metadata_raw = edit_header(VALID, lambda h: h["__metadata__"].__setitem__(
        "model", raw_pickle.decode("latin-1")))
    in_tensor = edit_header(VALID, lambda h: h.update(
        {"weights.pickle": {"dtype": "U8", "shape": [len(raw_pickle)], "data_offsets": [0, len(raw_pickle)]}}))
    assert os.path.exists(np_object) and not os.path.exists(tmp_path / MARKER)
    for data in (raw_pickle, np_object.read_bytes(), in_metadata, in_metadata_raw, in_tensor):
        with pytest.raises(ModelFileError):
            load_bytes(tmp_path, data)
    with pytest.raises(ModelFileError):
        load_model(np_object)
    assert not os.path.exists(tmp_path / MARKER)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="cannot open"):
        load_model(tmp_path / "absent.safetensors")
    with pytest.raises(ModelFileError, match="cannot open"):
        load_model(tmp_path)


# ---- fuzzing --------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["os.system", "dense", "relu", "adam", "../x", "F32", "I64", "accuracy"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8)


def _nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _nodes(child, (*path, index))


def _replace(value, path, new):
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


@st.composite
def mutated_files(draw):
    data = bytearray(VALID)
    kind = draw(st.sampled_from(["flip", "truncate", "header", "document"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= draw(st.integers(1, 255))
        return bytes(data)
    if kind == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    header, body = split(VALID)
    if kind == "header":
        paths = list(_nodes(header))
        header = _replace(header, draw(st.sampled_from(paths)), draw(json_values))
        return join(header, body) if isinstance(header, dict) else join({"x": header}, body)
    key = draw(st.sampled_from(["model", "compile", "state", "info"]))
    doc = json.loads(header["__metadata__"][key])
    doc = _replace(doc, draw(st.sampled_from(list(_nodes(doc)))), draw(json_values))
    header["__metadata__"][key] = json.dumps(doc)
    return join(header, body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_files())
def test_mutated_files_raise_only_polynn_errors(tmp_path, data):
    try:
        model = load_bytes(tmp_path, data)
    except PolynnError:
        return
    # A mutation the checks accept (a flipped weight byte, a changed hyperparameter) is a model.
    assert isinstance(model, Sequential)


@pytest.mark.parametrize("data", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", b"not a model file at all"])
def test_every_file_error_names_the_file(tmp_path, data):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(data)
    for load in (load_model, lambda p: Sequential([Dense(1, input_dim=2)]).load_weights(p)):
        with pytest.raises(ModelFileError, match=re.escape(repr(str(path)))):
            load(path)
