"""examples/mnist_convnet.py and sequence_classification.py: their data, and a run on each installed backend."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RESULT = re.compile(r"^Test loss: \d+\.\d{4} - test accuracy: (\d\.\d{4}) \(backend (\w+), (float\d\d)\)$")

# JAX compiles each block shape anew (seconds each), so its runs are left to -m "" (CI).
BACKENDS = [pytest.param("numpy"), pytest.param("tensorflow"), pytest.param("torch"),
            pytest.param("jax", marks=pytest.mark.slow)]


def _example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _needs(backend):
    if backend != "numpy":
        pytest.importorskip(backend, reason=f"engine {backend} is not installed")
    if backend == "jax":
        pytest.importorskip("polynn_jax", reason="examples/polynn-jax is not installed")


def _accuracy(out: str, backend: str) -> float:
    match = RESULT.match(out.splitlines()[-1])
    assert match, out
    assert match.group(2) == backend and match.group(3) == "float32"
    return float(match.group(1))


# ---- the MNIST convnet --------------------------------------------------------------------


def test_digits_are_deterministic_images_of_their_labels():
    convnet = _example("mnist_convnet")
    (x, y), (x_test, y_test) = convnet.load_data(500, 200)
    assert x.shape == (500, 28, 28, 1) and x.dtype == np.float32 and x_test.shape == (200, 28, 28, 1)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    (again, y_again), _ = convnet.load_data(500, 200)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(y, y_again)
    # Each class is its own shape: the nearest class mean of the training images already tells
    # most test images apart (10 classes: chance is 10%), and no two images are the same.
    means = np.stack([x[y == c].reshape(-1, 784).mean(0) for c in range(10)])
    nearest = np.argmin(((x_test.reshape(-1, 1, 784) - means) ** 2).sum(-1), axis=1)
    assert (nearest == y_test).mean() > 0.5
    assert len(np.unique(x.reshape(500, -1), axis=0)) == 500


@pytest.mark.parametrize("backend", BACKENDS)
def test_mnist_convnet_example_runs(backend, capsys):
    _needs(backend)
    _example("mnist_convnet").main(["--backend", backend, "--epochs", "1", "--train-samples", "256",
                                    "--test-samples", "64", "--seed", "0", "--quiet"])
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == ["x_train shape: (256, 28, 28, 1)", "256 train samples", "64 test samples"]
    _accuracy(out, backend)


@pytest.mark.slow  # the example at its default size (its time: docs/performance.md)
def test_mnist_convnet_example_learns_the_digits(capsys):
    _example("mnist_convnet").main(["--seed", "0"])
    out = capsys.readouterr().out
    assert "Total params: 34,826" in out  # Keras's count for this model
    assert _accuracy(out, "numpy") >= 0.9


# ---- the sequence example ------------------------------------------------------------------


def test_sequence_labels_say_which_marker_comes_first():
    sequences = _example("sequence_classification")
    tokens, labels = sequences.load_data(1000)
    assert tokens.shape == (1000, sequences.LENGTH) and tokens.dtype == np.int32 and labels.shape == (1000, 1)
    assert tokens.min() >= 1 and tokens.max() < sequences.VOCABULARY
    # Every sequence holds each marker once, so counting tokens says nothing of the label ...
    assert ((tokens == sequences.OPEN).sum(1) == 1).all() and ((tokens == sequences.CLOSE).sum(1) == 1).all()
    # ... which is the order of the two.
    first_open = np.argmax(tokens == sequences.OPEN, axis=1) < np.argmax(tokens == sequences.CLOSE, axis=1)
    np.testing.assert_array_equal(labels[:, 0], first_open.astype(np.float32))
    assert 0.4 < labels.mean() < 0.6
    np.testing.assert_array_equal(tokens, sequences.load_data(1000)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequence_example_runs(backend, capsys):
    _needs(backend)
    _example("sequence_classification").main(["--backend", backend, "--epochs", "1", "--train-samples", "128",
                                              "--test-samples", "64", "--seed", "0", "--quiet"])
    _accuracy(capsys.readouterr().out, backend)


@pytest.mark.slow  # the example's default size
def test_sequence_example_learns_the_order(capsys):
    _example("sequence_classification").main(["--seed", "0"])
    assert _accuracy(capsys.readouterr().out, "numpy") >= 0.9
