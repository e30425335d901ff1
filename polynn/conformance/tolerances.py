"""The tolerances of every case, by dtype: float64 is the strict contract, float32 allows for rounding.

Float64 is checked at 1e-9 (rtol and atol) everywhere: engines computing the documented formulas
in double precision agree to about 1e-15, so 1e-9 leaves room only for summation order.
Float32 tolerances allow for engines rounding differently (fused kernels, other summation orders,
other exp/log/tanh implementations); each one records the deviation measured on the first-party
backends, and none is looser than a few times that.
"""

from __future__ import annotations

from ._compare import Tolerance

STRICT = Tolerance(rtol=1e-9, atol=1e-9)
EXACT = Tolerance(rtol=0.0, atol=0.0)


def blog(dtype: str, history_keys) -> dict[str, Tolerance]:
    """The blog example: per-step losses, History, final weights and test predictions (float64);
    per-epoch loss and val_loss, and test predictions (float32), as the project's contract says."""
    if dtype == "float64":
        return {
            "step_loss": Tolerance(rtol=1e-9, atol=0.0),
            **{f"history.{key}": Tolerance(rtol=1e-9, atol=0.0) for key in history_keys},
            "final_weights": Tolerance(rtol=0.0, atol=1e-9),
            "test_predictions": Tolerance(rtol=0.0, atol=1e-9),
        }
    return {
        "history.loss": Tolerance(rtol=1e-4, atol=0.0),
        "history.val_loss": Tolerance(rtol=1e-4, atol=0.0),
        "test_predictions": Tolerance(rtol=0.0, atol=2e-2),
    }


# float32, per component kind and observation.
_FLOAT32 = {
    "activation": {
        "forward": Tolerance(rtol=1e-6, atol=1e-7),
        "gradient": Tolerance(rtol=1e-5, atol=1e-7),
    },
    "loss": {
        "value": Tolerance(rtol=1e-6, atol=0.0),
        "gradient": Tolerance(rtol=1e-5, atol=1e-7),
    },
    "metric": {
        "evaluate": Tolerance(rtol=1e-6, atol=0.0),
        "train": Tolerance(rtol=1e-6, atol=0.0),
    },
    "optimizer": {
        "trajectory": Tolerance(rtol=1e-4, atol=1e-6),
    },
    "initializer": {
        # The core draws initial values in float64 and casts them once; a backend only stores them.
        "values": EXACT,
        # Statistics are computed in float64 from the stored values, so they agree as closely.
        "statistics": STRICT,
    },
}

_FLOAT64 = {
    "initializer": {"values": EXACT, "statistics": STRICT},
}


def component(dtype: str, kind: str, observations) -> dict[str, Tolerance]:
    table = _FLOAT64 if dtype == "float64" else _FLOAT32
    return {name: table.get(kind, {}).get(name, STRICT) if dtype == "float64" else table[kind][name]
            for name in observations}
