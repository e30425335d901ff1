"""Torch implementations of user functions (custom_loss, custom_metric).

The function runs on the step's tensors under polynn.ops.using(this backend's ops), so autograd
differentiates it like the rest of the model; numbers and arrays it makes take the model's dtype.
"""

from __future__ import annotations

from polynn import ops as polynn_ops
from polynn.backend import check_values

from . import ops as torch_ops


def _run(function, like, *tensors):
    with polynn_ops.using(torch_ops), torch_ops.floats(like.dtype, like.device):
        return torch_ops.convert_to_tensor(function(*tensors)).to(like.dtype)


def loss(spec, y, p):
    return _per_sample(spec, _run(spec.function, p, y, p), p)


def metric(spec, y, p):
    return _per_sample(spec, _run(spec.function, p, y, p), p)


def _per_sample(spec, values, p):
    check_values(spec, values.shape, p.shape)
    return values
