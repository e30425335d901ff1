"""A case per polynn.ops op: a user function written with the op (op_functions.py), run as a custom
activation or a custom loss in a tiny model, its values and gradients compared with the reference.

The cases reach the op through the public API only (custom_activation / custom_loss), so a backend
without polynn.ops support (no custom_* implementation) reports every one of them unsupported.
"""

from __future__ import annotations

from ..activations import CustomActivation
from ..losses import CustomLoss
from . import inputs, op_functions, tolerances
from ._case import Case
from ._harness import activation_probe, loss_probe

KIND = "op"


def _activation_scenario(entry, spec):
    def run(backend, dtype):
        grid = inputs.op_grid(entry.domain, units=op_functions.UNITS, held=op_functions.HELD)
        return activation_probe(spec, grid, inputs.activation_upstream(grid.shape), backend=backend, dtype=dtype)

    return run


def _loss_scenario(spec):
    def run(backend, dtype):
        p, y = inputs.op_probabilities(units=op_functions.UNITS)
        return loss_probe(spec, p, y, backend=backend, dtype=dtype)

    return run


def cases() -> list[Case]:
    found = []
    for entry in op_functions.functions():
        if entry.harness == "loss":
            spec = CustomLoss(function=entry.function)
            scenario, observations = _loss_scenario(spec), ("value", "gradient")
        else:
            spec = CustomActivation(function=entry.function)
            scenario, observations = _activation_scenario(entry, spec), ("forward", "gradient")

        def tol(dtype, observations=observations):
            return tolerances.component(dtype, KIND, observations)

        found.append(Case(f"{KIND}.{entry.op}", KIND, scenario, tol, (spec,)))
    return found
