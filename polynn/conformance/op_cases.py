"""A case per polynn.ops op: a user function written with the op (op_functions.py), run as a custom
activation or a custom loss in a tiny model, its values and gradients compared with the reference.

The cases reach the op through the public API only (custom_activation / custom_loss), so a backend
without polynn.ops support (no custom_* implementation) reports every one of them unsupported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..activations import CustomActivation
from ..losses import CustomLoss
from . import inputs, op_functions, tolerances
from ._case import Case
from ._compare import Tolerance
from ._harness import activation_probe, loss_probe

KIND = "op"


def _activation_scenario(entry: op_functions.OpFunction, spec: CustomActivation,
                         ) -> Callable[[str, str], dict[str, Any]]:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        grid = inputs.op_grid(entry.domain, units=op_functions.UNITS, held=op_functions.HELD)
        return activation_probe(spec, grid, inputs.activation_upstream(grid.shape), backend=backend, dtype=dtype)

    return run


def _loss_scenario(spec: CustomLoss) -> Callable[[str, str], dict[str, Any]]:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        p, y = inputs.op_probabilities(units=op_functions.UNITS)
        return loss_probe(spec, p, y, backend=backend, dtype=dtype)

    return run


def cases() -> list[Case]:
    found = []
    for entry in op_functions.functions():
        spec: CustomLoss | CustomActivation
        if entry.harness == "loss":
            spec = CustomLoss(function=entry.function)
            scenario, observations = _loss_scenario(spec), ("value", "gradient")
        else:
            spec = CustomActivation(function=entry.function)
            scenario, observations = _activation_scenario(entry, spec), ("forward", "gradient")

        def tol(dtype: str, observations: tuple[str, ...] = observations) -> dict[str, Tolerance]:
            return tolerances.component(dtype, KIND, observations)

        found.append(Case(f"{KIND}.{entry.op}{entry.label}", KIND, scenario, tol, (spec,)))
    return found
