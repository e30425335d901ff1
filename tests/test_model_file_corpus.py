"""The crafted model-file corpus, checked on every run: each file is refused cleanly or loads and trains.

A clean refusal is a polynn error naming the file, in a message of bounded length, reached fast and
without reading the file's data; a clean load gives a model that trains a step, saves, and loads again.
The hostile files of test_model_files_fuzz are held to the same standard here.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from test_model_files_fuzz import (
    HOSTILE,
    UNKNOWN,
    VALID,
    edit_doc,
    edit_header,
    join,
    set_first_layer_activation,
    split,
    valid_file_bytes,
)

from polynn.errors import ModelFileError, PolynnError, UnknownComponentError
from polynn.layers import Dense, Dropout
from polynn.models import Sequential, load_model

GiB = 2**30
# Longest message a refusal may give, file name included.
MESSAGE_LIMIT = 2000
# Peak Python-heap growth (tracemalloc, which sees NumPy's buffers) of refusing a file that the
# header alone condemns, and the wall time allowed (generous: this machine's CPUs are shared).
PEAK_LIMIT = 8 * 2**20
TIME_LIMIT = 5.0
VALID32 = valid_file_bytes("float32")
X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
Y = np.array([[1.0], [1.0], [0.0], [0.0]])


# ---- file builders -------------------------------------------------------------------------------


def _doc_value(key: str, field: str, value) -> bytes:
    return edit_doc(VALID, key, lambda d: {**d, field: value})


def _set_element(data: bytes, name: str, index: int, value: float) -> bytes:
    """`data` with element `index` of tensor `name` (F64 or F32) set to `value`, bytes alone."""
    header, body = split(data)
    entry = header[name]
    code = {"F64": "<d", "F32": "<f", "F16": "<e"}[entry["dtype"]]
    start = entry["data_offsets"][0] + index * struct.calcsize(code)
    body = body[:start] + struct.pack(code, value) + body[start + struct.calcsize(code):]
    return join(header, body)


def _with_tensor(data: bytes, name: str, code: str, shape: list, nbytes: int) -> tuple[bytes, int]:
    """(the file's head, its full size): `data` plus a tensor of `nbytes` zero bytes after the rest."""
    header, body = split(data)
    header[name] = {"dtype": code, "shape": shape, "data_offsets": [len(body), len(body) + nbytes]}
    head = join(header, body)
    return head, len(head) + nbytes


def _reference_weights(data: bytes) -> list[np.ndarray]:
    """The four weights as the file's bytes say, read without polynn."""
    header, body = split(data)
    names = ["weights.dense.kernel", "weights.dense.bias", "weights.dense_1.kernel", "weights.dense_1.bias"]
    return [np.frombuffer(body[header[n]["data_offsets"][0]:header[n]["data_offsets"][1]], "<f8").reshape(
        header[n]["shape"]) for n in names]


def _weights_file() -> bytes:
    """VALID's weights as save_weights writes them."""
    model = Sequential([Dense(3, input_dim=2, activation="relu"), Dropout(0.5), Dense(1, activation="sigmoid")])
    model.set_weights(_reference_weights(VALID))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "w.safetensors")
        model.save_weights(path)
        with open(path, "rb") as stream:
            return stream.read()


def _tensor_entries(count: int, prefix: str = "t") -> bytes:
    return b",".join(b'"%s%d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}' % (prefix.encode(), i)
                     for i in range(count))


def _layer_config(index: int, **values):
    def change(doc):
        doc["config"]["layers"][index]["config"].update(values)
        return doc
    return change


def _loss_config(**values):
    return lambda doc: {**doc, "loss": {**doc["loss"], "config": {**doc["loss"]["config"], **values}}}


class Case:
    """One crafted file: how to write it, what loading it must do, and with which loader."""

    def __init__(self, write: Callable[[str], None], expect: str, error: type = ModelFileError,
                 loader: str = "model", peak: int | None = PEAK_LIMIT) -> None:
        self.write, self.expect, self.error, self.loader, self.peak = write, expect, error, loader, peak


def _bytes(data: bytes, expect: str = "refuse", **kwargs) -> Case:
    def write(path):
        with open(path, "wb") as stream:
            stream.write(data)
    return Case(write, expect, **kwargs)


def _sparse(head: bytes, size: int, **kwargs) -> Case:
    """A file of `size` bytes starting with `head`, the rest a hole: no disk used, zeros read."""
    def write(path):
        with open(path, "wb") as stream:
            stream.write(head)
            stream.truncate(size)
    return Case(write, "refuse", **kwargs)


def _safetensors_only() -> tuple[bytes, int]:
    """A well-formed safetensors file of one 1 GiB tensor and no polynn metadata."""
    text = json.dumps({"x": {"dtype": "U8", "shape": [GiB], "data_offsets": [0, GiB]}}).encode()
    return struct.pack("<Q", len(text)) + text, 8 + len(text) + GiB


def _prefixed(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _header_of(count: int) -> bytes:
    return _prefixed(b"{" + _tensor_entries(count) + b"}")


CASES: dict[str, Case] = {
    # Issue 22, item 4: size and structure before allocation.
    "sparse 1 GiB of zeros": _sparse(b"", GiB),
    "sparse 1 GiB safetensors without polynn metadata": _sparse(*_safetensors_only()),
    "sparse 1 GiB unexpected tensor in a model file": _sparse(*_with_tensor(VALID, "weights.junk", "U8", [GiB], GiB)),
    "sparse 1 GiB unexpected tensor, load_weights": _sparse(
        *_with_tensor(VALID, "weights.junk", "U8", [GiB], GiB), loader="weights"),
    "sparse 1 GiB tensor shaped unlike the model": _sparse(*_with_tensor(
        edit_header(VALID, lambda h: h.pop("weights.dense.kernel")), "weights.dense.kernel", "F64", [2**14, 2**13],
        GiB)),
    "header of 56 MB (a million tensors' worth)": _sparse(b"\x00\x00\x80\x03\x00\x00\x00\x00{", 8 + 56 * 2**20),
    "header length 2**63": _sparse(struct.pack("<Q", 2**63) + b"{", GiB),
    "100,000 tensors in a 5 MB header": _bytes(_header_of(100_000), peak=None),
    "header of 2 million JSON values": _bytes(_prefixed(b'{"a":[' + b"0," * 1_999_999 + b"0]}"), peak=None),
    "60,000 unexpected tensors": _bytes(edit_header(VALID, lambda h: h.update(
        {f"weights.extra{i}": {"dtype": "F64", "shape": [0], "data_offsets": [0, 0]} for i in range(60_000)})),
        peak=None),
    "a 1 MB component name": _bytes(edit_doc(VALID, "model", set_first_layer_activation("a" * 2**20)), peak=None),
    "a 1 MB format string": _bytes(edit_header(VALID, lambda h: h["__metadata__"].__setitem__(
        "format", "x" * 2**20)), peak=None),
    "a 1 MB iterations value": _bytes(
        _doc_value("state", "iterations", 0).replace(b'iterations\\": 0', b'iterations\\": ' + b"9" * 2**20),
        peak=None),
    # Item 5: zero-size shapes with huge dimensions, unregistered plain names.
    "zero-size shape with a 2**62 dimension": _bytes(_with_tensor(VALID, "weights.zero", "F64", [0, 2**62], 0)[0]),
    "zero-size shape with a 2**64 dimension": _bytes(_with_tensor(VALID, "weights.zero", "F64", [2**64, 0], 0)[0]),
    "zero-size shape of 32 dimensions of 2**20": _bytes(
        _with_tensor(VALID, "weights.zero", "U8", [2**20] * 31 + [0], 0)[0]),
    "zero-size weight in the model's place": _bytes(edit_header(VALID, lambda h: h.update(
        {"weights.dense.bias": {**h["weights.dense.bias"], "shape": [0, 2**62]}}))),
    "activation eval": _bytes(edit_doc(VALID, "model", set_first_layer_activation("eval")),
                              error=UnknownComponentError),
    "activation exec": _bytes(edit_doc(VALID, "model", set_first_layer_activation("exec")),
                              error=UnknownComponentError),
    "layer __import__": _bytes(edit_doc(VALID, "model", lambda d: {**d, "config": {
        **d["config"], "layers": [{"class_name": "__import__", "config": {}}]}}), error=UnknownComponentError),
    "initializer system": _bytes(edit_doc(VALID, "model", lambda d: json.loads(json.dumps(d).replace(
        '"glorot_uniform"', '"system"'))), error=UnknownComponentError),
    "loss open": _bytes(_doc_value("compile", "loss", "open"), error=UnknownComponentError),
    "optimizer compile": _bytes(_doc_value("compile", "optimizer", "compile"), error=UnknownComponentError),
    "metric print": _bytes(_doc_value("compile", "metrics", ["print"]), error=UnknownComponentError),
    "weighted metric getattr": _bytes(_doc_value("compile", "weighted_metrics", ["getattr"]),
                                      error=UnknownComponentError),
    # Item 6: non-finite weights and slots, state values out of range.
    "NaN in a kernel": _bytes(_set_element(VALID, "weights.dense.kernel", 2, math.nan)),
    "inf in a bias": _bytes(_set_element(VALID, "weights.dense.bias", 0, math.inf)),
    "-inf in the last kernel": _bytes(_set_element(VALID, "weights.dense_1.kernel", 1, -math.inf)),
    "NaN in an optimizer slot": _bytes(_set_element(VALID, "optimizer.dense.kernel.m", 0, math.nan)),
    "inf in an optimizer slot": _bytes(_set_element(VALID, "optimizer.dense_1.bias.v", 0, math.inf)),
    "NaN in a float32 file": _bytes(_set_element(VALID32, "weights.dense_1.bias", 0, math.nan)),
    "NaN in a weights file, load_weights": _bytes(_set_element(_weights_file(), "weights.dense.bias", 1, math.nan),
                                                  loader="weights"),
    "inf in a model file, load_weights": _bytes(_set_element(VALID, "weights.dense.kernel", 0, math.inf),
                                                loader="weights"),
    "iterations 2**63 - 1": _bytes(_doc_value("state", "iterations", 2**63 - 1)),
    "iterations 2**62": _bytes(_doc_value("state", "iterations", 2**62)),
    "iterations 2**53 + 1": _bytes(_doc_value("state", "iterations", 2**53 + 1)),
    "iterations 2**64": _bytes(_doc_value("state", "iterations", 2**64)),
    "iterations 1.5": _bytes(_doc_value("state", "iterations", 1.5)),
    "seed 2**63": _bytes(_doc_value("state", "seed", 2**63)),
    "seed -1": _bytes(_doc_value("state", "seed", -1)),
    "learning rate -0.1": _bytes(_doc_value("state", "learning_rate", -0.1)),
    "steps_per_execution 0": _bytes(_doc_value("compile", "steps_per_execution", 0)),
    # Item 6: values that loaded and then failed fit raw (refused once every value is validated).
    "Dropout seed 2**64": _bytes(edit_doc(VALID, "model", _layer_config(1, seed=2**64)), error=PolynnError),
    "Dropout noise_shape too wide": _bytes(edit_doc(VALID, "model", _layer_config(1, noise_shape=[None, 7])),
                                           error=PolynnError),
    "Dropout noise_shape of rank 3": _bytes(edit_doc(VALID, "model", _layer_config(1, noise_shape=[1, 1, 1])),
                                            error=PolynnError),
    "loss axis 5": _bytes(edit_doc(VALID, "compile", _loss_config(axis=5)), error=PolynnError),
    "loss axis 2**70": _bytes(edit_doc(VALID, "compile", _loss_config(axis=2**70)), error=PolynnError),
    # Files that must load and train: the edges of the accepted ranges, and dtype changes.
    "iterations 2**53 - 1": _bytes(_doc_value("state", "iterations", 2**53 - 1), "load"),
    "iterations 2**53": _bytes(_doc_value("state", "iterations", 2**53), "load"),
    "seed 2**63 - 1": _bytes(_doc_value("state", "seed", 2**63 - 1), "load"),
    "learning rate 1e300": _bytes(_doc_value("state", "learning_rate", 1e300), "load"),
    "learning rate 0": _bytes(_doc_value("state", "learning_rate", 0.0), "load"),
    "steps_per_execution 2**62": _bytes(_doc_value("compile", "steps_per_execution", 2**62), "load"),
    "float64 file": _bytes(VALID, "load"),
    "float32 file": _bytes(VALID32, "load"),
    "weights file, load_weights": _bytes(_weights_file(), "load", loader="weights"),
    "model file, load_weights": _bytes(VALID, "load", loader="weights"),
}


# ---- judging one load ----------------------------------------------------------------------------


def _load(path: str, loader: str, **kwargs):
    if loader == "model":
        return load_model(path, **kwargs)
    model = Sequential([Dense(3, input_dim=2, activation="relu"), Dropout(0.5), Dense(1, activation="sigmoid")])
    model.load_weights(path, **kwargs)
    return model


def _after_load(model, path: str, loader: str, dtype: str | None) -> tuple[str, str] | None:
    """None when a loaded model trains a step (or refuses to, cleanly, at the step bound), saves and
    loads again to the same state; else (outcome, what went wrong)."""
    if loader == "weights":
        model.compile(optimizer="adam", loss="binary_crossentropy", seed=0)
    try:
        model.fit(X, Y, epochs=1, batch_size=4, verbose=0)
    except PolynnError as error:
        if "2**53" not in str(error):
            return "unclean refusal", f"fit refused: {error}"
    again = os.path.join(os.path.dirname(path), "again.safetensors")
    model.save(again)
    try:
        reloaded = load_model(again, dtype=dtype)
    except PolynnError as error:
        return "data lost", f"polynn saved a file it refuses: {error}"
    if reloaded.iterations != model.iterations:
        return "data lost", f"iterations {model.iterations} saved, {reloaded.iterations} loaded"
    for a, b in zip(model.get_weights(), reloaded.get_weights()):
        if not np.array_equal(a, b, equal_nan=True):
            return "data lost", "weights changed through save and load"
    return None


def judge(case: Case, folder, dtype: str | None = None) -> tuple[str, str]:
    """(outcome, detail): outcome is "clean", "unclean refusal" (a polynn error that does not name the
    file, is unbounded, slow or memory-hungry, or refuses a valid file), "silent-wrong" (loaded what
    must be refused), "raw" (any other exception, or a loaded model that then fails raw) or "data
    lost" (a loaded model trains, and polynn cannot load what it then saves)."""
    path = os.path.join(str(folder), "crafted.safetensors")
    case.write(path)
    if case.peak is not None:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        model = _load(path, case.loader, **({"dtype": dtype} if dtype else {}))
    except PolynnError as error:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()  # harmless when not started
        message = str(error)
        problems = []
        if case.expect != "refuse":
            problems.append("refused a valid file")
        if not isinstance(error, case.error):
            problems.append(f"{type(error).__name__}, not {case.error.__name__}")
        if repr(path) not in message:
            problems.append("the file is not named")
        if len(message) > MESSAGE_LIMIT:
            problems.append(f"a message of {len(message)} characters")
        if case.peak is not None and peak > case.peak:
            problems.append(f"peak memory {peak / 2**20:.0f} MiB")
        if elapsed > TIME_LIMIT:
            problems.append(f"{elapsed:.1f} s")
        return ("unclean refusal" if problems else "clean"), "; ".join([*problems, message[:300]])
    except BaseException as error:  # a raw error is the finding: report it, whatever it is
        tracemalloc.stop()
        if isinstance(error, KeyboardInterrupt):
            raise
        return "raw", f"{type(error).__name__}: {str(error)[:300]}"
    tracemalloc.stop()
    try:
        problem = _after_load(model, path, case.loader, dtype)
    except PolynnError as error:
        problem = "unclean refusal", f"after loading: {str(error)[:300]}"
    except Exception as error:
        return "raw", f"after loading: {type(error).__name__}: {str(error)[:300]}"
    if case.expect == "refuse":
        return "silent-wrong", f"loaded ({problem[1] if problem else 'and trained'})"
    return problem or ("clean", "loaded and trained")


@pytest.mark.parametrize("name", list(CASES))
def test_crafted_file(tmp_path, name):
    outcome, detail = judge(CASES[name], tmp_path)
    assert outcome == "clean", detail


@pytest.mark.parametrize("name,dtype", [("float64 file", "float32"), ("float32 file", "float64")])
def test_dtype_change_on_load(tmp_path, name, dtype):
    outcome, detail = judge(CASES[name], tmp_path, dtype)
    assert outcome == "clean", detail


@pytest.mark.parametrize("name", sorted(HOSTILE) + sorted(UNKNOWN))
def test_hostile_files_are_refused_cleanly(tmp_path, name):
    data = {**HOSTILE, **UNKNOWN}[name]
    outcome, detail = judge(_bytes(data, error=PolynnError), tmp_path)
    assert outcome == "clean", detail


# ---- non-finite values on request, and the step bound ----------------------------------------------


@pytest.mark.parametrize("name", [n for n in CASES if "NaN" in n or "inf" in n])
def test_nonfinite_values_load_on_request(tmp_path, name):
    case = CASES[name]
    path = str(tmp_path / "nonfinite.safetensors")
    case.write(path)
    with pytest.raises(ModelFileError, match="allow_nonfinite=True"):
        _load(path, case.loader)
    model = _load(path, case.loader, allow_nonfinite=True)
    header, body = split(open(path, "rb").read())
    bad = [n for n, e in header.items() if n != "__metadata__" and not np.isfinite(np.frombuffer(
        body[e["data_offsets"][0]:e["data_offsets"][1]], {"F64": "<f8", "F32": "<f4"}[e["dtype"]])).all()]
    assert len(bad) == 1
    if bad[0].startswith("weights."):
        index = ["weights.dense.kernel", "weights.dense.bias", "weights.dense_1.kernel",
                 "weights.dense_1.bias"].index(bad[0])
        assert not np.isfinite(model.get_weights()[index]).all()
    else:
        slots = [s for w in model._compiled.runtime.get_optimizer_state() for s in w]
        assert sum(not np.isfinite(np.asarray(s)).all() for s in slots) == 1


@pytest.mark.parametrize("flag", [1, "yes", None])
def test_allow_nonfinite_must_be_a_bool(tmp_path, flag):
    path = tmp_path / "m.safetensors"
    path.write_bytes(VALID)
    with pytest.raises(PolynnError, match="allow_nonfinite"):
        load_model(path, allow_nonfinite=flag)


def test_training_stops_at_the_step_bound_and_the_file_still_loads(tmp_path):
    path = tmp_path / "edge.safetensors"
    path.write_bytes(_doc_value("state", "iterations", 2**53 - 2))
    model = load_model(path)
    model.fit(X, Y, epochs=1, batch_size=2, verbose=0)  # two steps: exactly to the bound
    assert model.iterations == 2**53
    before = model.get_weights()
    with pytest.raises(PolynnError, match=re.escape("2**53")):
        model.fit(X, Y, epochs=1, batch_size=2, verbose=0)
    assert model.iterations == 2**53
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.save(path)
    assert load_model(path).iterations == 2**53


# ---- truncations and byte mutations of a valid file --------------------------------------------------


def _damaged(count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` truncations and `count` byte mutations of VALID, drawn from a seeded generator."""
    rng = np.random.default_rng(seed)
    files = [(f"truncated to {n}", VALID[:n]) for n in sorted(rng.choice(len(VALID), count, replace=False))]
    for _ in range(count):
        data = bytearray(VALID)
        positions = rng.choice(len(VALID), int(rng.integers(1, 4)), replace=False)
        for position in positions:
            data[position] ^= int(rng.integers(1, 256))
        files.append((f"bytes {sorted(positions.tolist())} changed", bytes(data)))
    return files


def _check_one(path: str, label: str, data: bytes, tally: dict[str, int]) -> None:
    with open(path, "wb") as stream:
        stream.write(data)
    try:
        model = load_model(path)
    except (ModelFileError, UnknownComponentError) as error:  # the latter: a changed letter in a name
        assert repr(path) in str(error) and len(str(error)) <= MESSAGE_LIMIT, label
        tally["refused"] += 1
        return
    # Accepted: then it is exactly the model the bytes describe.
    for loaded, stored in zip(model.get_weights(), _reference_weights(data)):
        np.testing.assert_array_equal(loaded, stored, err_msg=label)
    tally["loaded"] += 1


def _check_damaged(tmp_path, files) -> dict[str, int]:
    tally: dict[str, int] = {"refused": 0, "loaded": 0}
    path = str(tmp_path / "damaged.safetensors")
    # A changed byte in the recorded backend's name makes a warning: not what is checked here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for label, data in files:
            _check_one(path, label, data, tally)
    return tally


def test_truncated_and_mutated_files(tmp_path):
    tally = _check_damaged(tmp_path, _damaged(48, seed=22))
    assert sum(tally.values()) == 96 and tally["refused"] > 0


@pytest.mark.slow
def test_every_truncation_and_many_mutations(tmp_path):
    files = [(f"truncated to {n}", VALID[:n]) for n in range(len(VALID))]
    files += _damaged(1500, seed=2222)[1500:]
    tally = _check_damaged(tmp_path, files)
    assert tally["refused"] >= len(VALID)


@pytest.mark.slow
def test_a_real_million_tensor_header(tmp_path):
    outcome, detail = judge(_bytes(_header_of(1_000_000), peak=None), tmp_path)
    assert outcome == "clean", detail
