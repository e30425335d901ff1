"""Shared fixtures: isolated plugin state, fake installed plugin distributions, and small data sets."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from polynn import plugins
from polynn import random as _random


@pytest.fixture(autouse=True)
def _isolate_global_state(monkeypatch):
    """Every test starts without a global seed or plugin-related environment variables."""
    for name in ("POLYNN_BACKEND", "POLYNN_STRICT_PLUGINS", "POLYNN_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    saved = _random._global_seed
    _random._global_seed = None
    yield
    _random._global_seed = saved


@pytest.fixture
def fresh_plugins():
    """Rescan plugins before the test and again after it, so fake plugins never leak."""
    plugins.reset()
    yield plugins
    plugins.reset()


@pytest.fixture
def install_plugin(tmp_path, monkeypatch, fresh_plugins):
    """Install a fake distribution for real: NAME.dist-info with METADATA and entry_points.txt
    declaring group [polynn], plus the plugin module, on sys.path.

    install_plugin(dist, entry_name, module_name, source) -> the folder holding it.
    """
    count = [0]

    def install(dist: str, entry: str, module: str, source: str, version: str = "1.0"):
        count[0] += 1
        root = tmp_path / f"site{count[0]}"
        # installers name the folder with the normalized name; importlib.metadata relies on it
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[polynn]\n{entry} = {module}\n")
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(root))
        plugins.reset()
        return root

    yield install
    # the fake modules must not be found by the next test's rescan
    import sys

    for name in [n for n, m in sys.modules.items() if getattr(m, "__file__", "") and str(tmp_path) in m.__file__]:
        del sys.modules[name]


@pytest.fixture
def binary_data():
    """A linearly separable binary problem: 200 samples, 4 features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5]) > 0).astype(np.float64).reshape(-1, 1)
    return x, y


@pytest.fixture
def assert_identical_runs():
    """Checker that two training runs, each (weights, history, predictions), agree bit for bit."""
    return _assert_identical_runs


def _assert_identical_runs(first, second):
    (w_first, h_first, p_first), (w_second, h_second, p_second) = first, second
    assert h_first == h_second
    assert all(np.array_equal(a, b) for a, b in zip(w_first, w_second))
    assert np.array_equal(p_first, p_second)


@pytest.fixture
def binary_model():
    """Factory of a small Dense -> (Dropout) -> Dense(sigmoid) classifier on 4 features, compiled."""
    return make_binary_model


def make_binary_model(units=8, dropout=0.0, **compile_kwargs):
    from polynn.layers import Dense, Dropout
    from polynn.models import Sequential

    layers = [Dense(units, input_dim=4, activation="tanh")]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(1, activation="sigmoid"))
    model = Sequential(layers)
    kwargs = {"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"], "seed": 7}
    kwargs.update(compile_kwargs)
    model.compile(**kwargs)
    return model
