"""Shared helpers: train the same model on the NumPy reference and on JAX, through the public API."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from polynn.models import Sequential  # noqa: E402

BACKENDS = ("numpy", "jax")


def train_both(build, compile_kwargs, x, y, fit_kwargs=None, dtype="float64", seed=11):
    """Train build() on NumPy and on JAX with the same seed: {backend: {history, weights, model}}."""
    runs = {}
    for backend in BACKENDS:
        model = Sequential(build())
        model.compile(backend=backend, dtype=dtype, seed=seed, **compile_kwargs)
        history = model.fit(x, y, verbose=0, **(fit_kwargs or {}))
        runs[backend] = dict(model=model, history=history.history, weights=model.get_weights())
    return runs["numpy"], runs["jax"]


def assert_same_training(ref, got, rtol=1e-9, atol=1e-9):
    assert got["history"].keys() == ref["history"].keys()
    for key in ref["history"]:
        np.testing.assert_allclose(got["history"][key], ref["history"][key], rtol=rtol, atol=atol, err_msg=key)
    assert len(got["weights"]) == len(ref["weights"])
    for w_got, w_ref in zip(got["weights"], ref["weights"]):
        assert w_got.dtype == w_ref.dtype
        np.testing.assert_allclose(w_got, w_ref, rtol=0, atol=atol)
