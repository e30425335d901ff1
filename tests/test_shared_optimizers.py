"""The optimizer rules written once on polynn.ops (each spec's update, polynn.optimizers.apply_updates)
give the NumPy reference's updates, run on NumPy's ops, for every optimizer configuration the
conformance kit exercises."""

from __future__ import annotations

import numpy as np
import pytest

from polynn import _registry, plugins
from polynn import ops as polynn_ops
from polynn.conformance import options
from polynn.optimizers import apply_updates
from polynn_numpy import ops as numpy_ops
from polynn_numpy import optimizers as numpy_optimizers

SHAPES = [(5, 3), (3,), (4, 2)]
STEPS = 6


def _configured():
    pairs = []
    for cls in _registry.specs("optimizer"):
        for config in options.configs("optimizer", cls):
            pairs.append(pytest.param(cls, dict(config.kwargs), id=f"{cls.name}{config.label()}"))
    return pairs


def _reference(spec, weights, grads_per_step, scalars, dtype, update=None):
    """The NumPy backend's update: flat buffers changed in place by polynn_numpy.optimizers.apply
    with its own rule, or `update` in its form (a shared rule one weight's views at a time)."""
    update = update or plugins.get_backend("numpy").implementation("optimizer", spec.name)
    shapes = [w.shape for w in weights]
    sizes = [w.size for w in weights]
    flat_weights = np.concatenate([w.ravel() for w in weights]).astype(dtype)
    flat_slots = [np.full(flat_weights.size, start, dtype) for start in spec.slot_initial_values()]
    scratch = numpy_optimizers.scratch(flat_weights.size, dtype)
    offsets = np.cumsum(sizes)[:-1]

    def per_weight(flat):
        return [v.reshape(shape) for v, shape in zip(np.split(flat, offsets), shapes)]

    weight_views = per_weight(flat_weights)
    slot_views = [list(slots) for slots in zip(*(per_weight(flat) for flat in flat_slots))] or [[] for _ in shapes]
    history = []
    for step, grads in enumerate(grads_per_step):
        flat_grads = np.concatenate([g.ravel() for g in grads]).astype(dtype)
        views = np.split(flat_grads, np.cumsum(sizes)[:-1])
        views = [v.reshape(shape) for v, shape in zip(views, shapes)]
        s = {name: values[step] for name, values in scalars.items()}
        numpy_optimizers.apply(spec, update, flat_weights, flat_grads, views,
                               flat_slots, s, scratch, weight_views, slot_views)
        history.append((flat_weights.copy(), [flat.copy() for flat in flat_slots]))
    return history


def _shared(spec, weights, grads_per_step, scalars, dtype):
    weights = [w.astype(dtype) for w in weights]
    slots = [[np.full(w.shape, start, dtype) for start in spec.slot_initial_values()] for w in weights]
    history = []
    with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(dtype):
        for step, grads in enumerate(grads_per_step):
            s = {name: values[step] for name, values in scalars.items()}
            weights, slots = apply_updates(spec, weights, [g.astype(dtype) for g in grads], slots, s)
            assert all(w.dtype == dtype for w in weights) and all(v.dtype == dtype for ws in slots for v in ws)
            flat_slots = [np.concatenate([ws[k].ravel() for ws in slots]) for k in range(len(spec.slot_names()))]
            history.append((np.concatenate([w.ravel() for w in weights]), flat_slots))
    return history


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cls, kwargs", _configured())
def test_shared_rules_give_the_numpy_reference_updates(cls, kwargs, dtype):
    spec = cls(**kwargs)
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=shape) for shape in SHAPES]
    grads_per_step = [[rng.normal(scale=0.5, size=shape) for shape in SHAPES] for _ in range(STEPS)]
    scalars = {name: values.astype(dtype) for name, values in spec.step_scalars(np.arange(STEPS)).items()}
    reference = _reference(spec, weights, grads_per_step, scalars, dtype)
    shared = _shared(spec, weights, grads_per_step, scalars, dtype)
    for step, ((ref_w, ref_slots), (got_w, got_slots)) in enumerate(zip(reference, shared)):
        for name, expected, actual in [("weights", ref_w, got_w)] + list(zip(spec.slot_names(), ref_slots, got_slots)):
            np.testing.assert_array_equal(actual, expected, err_msg=f"{name} after step {step + 1}")


@pytest.mark.parametrize("cls, kwargs", _configured())
def test_the_numpy_backends_shared_form_runs_in_its_flat_buffers(cls, kwargs):
    """Backend.shared_implementation('optimizer', name) on NumPy: the spec's update in the in-place
    form its runtime calls, on each weight's views of the flat buffers; the same bits as its own rule."""
    spec = cls(**kwargs)
    shared = plugins.get_backend("numpy").shared_implementation("optimizer", spec.name)
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=shape) for shape in SHAPES]
    grads_per_step = [[rng.normal(scale=0.5, size=shape) for shape in SHAPES] for _ in range(STEPS)]
    scalars = spec.step_scalars(np.arange(STEPS))
    own = _reference(spec, weights, grads_per_step, scalars, "float64")
    adapted = _reference(spec, weights, grads_per_step, scalars, "float64", update=shared)
    for (own_w, own_slots), (got_w, got_slots) in zip(own, adapted):
        for expected, actual in zip([own_w, *own_slots], [got_w, *got_slots]):
            np.testing.assert_array_equal(actual, expected)
