"""The tolerances of every case, by dtype: float64 is the strict contract, float32 allows for rounding.

Float64 is checked at 1e-9 (rtol and atol) everywhere: engines computing the documented formulas
in double precision agree to about 1e-15 absolute (measured on torch and TensorFlow: at most
6e-14 absolute, and 4e-10 relative only where a formula cancels, as 1 - tanh(x)**2 near |x| = 8).
Float32 tolerances allow for engines rounding differently (fused kernels, other summation orders,
other exp/log/tanh implementations); each one records the deviation measured on the first-party
backends, and none is looser than a few times that.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._compare import Tolerance

STRICT = Tolerance(rtol=1e-9, atol=1e-9)
EXACT = Tolerance(rtol=0.0, atol=0.0)


def blog(dtype: str, history_keys: Iterable[str]) -> dict[str, Tolerance]:
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


def scenario(dtype: str) -> dict[str, Tolerance]:
    """The whole-model scenarios: per-step losses, final weights and predictions."""
    if dtype == "float64":
        return {"step_loss": Tolerance(rtol=1e-9, atol=0.0), "final_weights": Tolerance(rtol=0.0, atol=1e-9),
                "predictions": Tolerance(rtol=0.0, atol=1e-9)}
    # Measured after 18 steps: step losses need rtol 5.5e-7 (TensorFlow softmax_rmsprop), 3.9e-7
    # (torch); final weights atol 8.3e-7 (TensorFlow softmax_rmsprop: RMSprop divides by a centered
    # root that amplifies rounding), 2.4e-7 (torch); predictions atol 3.6e-7 (both).
    return {"step_loss": Tolerance(rtol=2e-6, atol=0.0), "final_weights": Tolerance(rtol=0.0, atol=3e-6),
            "predictions": Tolerance(rtol=0.0, atol=1e-6)}


# float32, per component kind and observation. Each comment gives the largest deviation measured
# on the first-party backends (torch 2.13 CPU, TensorFlow 2.21 CPU) over every supported case, as
# the atol still needed at the chosen rtol; float32's epsilon is 1.19e-7.
_FLOAT32 = {
    "activation": {
        # atol needed at rtol 1e-6: 3.0e-7 (TensorFlow gelu at x < -5, whose 1 + erf(x / sqrt 2)
        # rounds to 0 where NumPy keeps -3e-7), 1.6e-7 (torch gelu).
        "forward": Tolerance(rtol=1e-6, atol=5e-7),
        # atol needed at rtol 1e-5: 3.4e-7 (TensorFlow gelu), 6.6e-8 (torch tanh: 1 - y**2 cancels
        # near |x| = 8). At rtol 1e-6, TensorFlow's mish needs 5.9e-6: x (1 - t**2) amplifies t's rounding.
        "gradient": Tolerance(rtol=1e-5, atol=6e-7),
    },
    "loss": {
        # rtol needed with atol 0: under 2.5e-7 on both (sums of 12 to 48 terms in other orders).
        "value": Tolerance(rtol=1e-6, atol=0.0),
        # atol needed at rtol 1e-6: 2.3e-8 (TensorFlow msle, sum reduction), 1.6e-9 (torch logit BCE).
        "gradient": Tolerance(rtol=2e-6, atol=5e-8),
    },
    "metric": {
        # rtol needed with atol 0: under 1e-7 on both (per-sample values in float32, sums in float64).
        "evaluate": Tolerance(rtol=1e-6, atol=0.0),
        "train": Tolerance(rtol=1e-6, atol=0.0),
        # The same metrics under weighted_metrics; the same sums with the weights in them.
        "weighted_evaluate": Tolerance(rtol=1e-6, atol=0.0),
        "weighted_train": Tolerance(rtol=1e-6, atol=0.0),
    },
    "optimizer": {
        # Displacements after 8 steps. atol needed at rtol 1e-5: 5.7e-8 (torch SGD momentum), 3.6e-8
        # (TensorFlow RMSprop); at rtol 0, 1.2e-7 (torch nesterov): one ulp of a weight in [1, 2).
        "trajectory": Tolerance(rtol=1e-5, atol=2.5e-7),
    },
    "op": {
        # atol needed at rtol 1e-6: 4.8e-9 (torch stack), 1.1e-9 (TensorFlow stack): sums whose terms cancel.
        "forward": Tolerance(rtol=1e-6, atol=2e-8),
        # rtol needed with atol 0: 8.0e-6 (torch mean: x - mean(x) cancels), 6.4e-6 (TensorFlow tanh);
        # none needed at rtol 1e-5. The atol leaves room for gradients that cancel to near 0.
        "gradient": Tolerance(rtol=1e-5, atol=1e-7),
        # The two custom losses: rtol needed with atol 0: 1.1e-7 (torch take_along_axis), 0 (TensorFlow).
        "value": Tolerance(rtol=1e-6, atol=0.0),
    },
    # Layers, regularizers and constraints: 8 SGD steps of a tiny model (trajectories.py); one table,
    # measured over the three kinds.
    "layer": {
        # rtol needed with atol 0: 2.4e-7 (TensorFlow Dense on rank-3 inputs), 2.2e-7 (torch L1).
        "step_loss": Tolerance(rtol=1e-6, atol=0.0),
        # Displacements; atol needed at rtol 1e-5: 6.0e-8 on both (he_normal Dense), as the optimizers'.
        "trajectory": Tolerance(rtol=1e-5, atol=2.5e-7),
        # atol needed at rtol 1e-5: 2.8e-7 (TensorFlow layer_normalization), 1.0e-7 (torch).
        "predictions": Tolerance(rtol=1e-5, atol=1e-6),
        # rtol needed with atol 0: 9.7e-8 (TensorFlow), 9.6e-8 (torch).
        "evaluate_loss": Tolerance(rtol=1e-6, atol=0.0),
    },
    "schedule": {
        # The optimizer cases' problem and observation; atol needed at rtol 1e-5: 4.2e-8 (torch), 0 (TensorFlow).
        "trajectory": Tolerance(rtol=1e-5, atol=2.5e-7),
    },
    "initializer": {
        # The core draws initial values in float64 and casts them once; a backend only stores them
        # (measured: 0 on both).
        "values": EXACT,
        # Statistics are computed in float64 from the stored values, so they agree as closely.
        "statistics": STRICT,
    },
}

_FLOAT32["regularizer"] = _FLOAT32["constraint"] = _FLOAT32["layer"]

_FLOAT64 = {
    "initializer": {"values": EXACT, "statistics": STRICT},
}


def component(dtype: str, kind: str, observations: Iterable[str]) -> dict[str, Tolerance]:
    if dtype == "float64":
        table = _FLOAT64.get(kind, {})
        return {name: table.get(name, STRICT) for name in observations}
    return {name: _FLOAT32[kind][name] for name in observations}


# Data-parallel training (polynn conformance --world-size N), float64: N processes against one process
# of the same backend, and a run resumed at another world size against an uninterrupted one. The
# processes compute one process's numbers but for the order of the all-reduce's sums (measured on
# NumPy, 2 processes against 1 after 93 Adam steps of the blog model: 8.3e-17 in the weights, 2.2e-16
# in the losses, 0 in the metrics); 1e-12 is the contract, with room for longer sums. In float32 the
# sums' order shows (NumPy: 6.0e-8 in the weights and the step losses), within the scenarios' tolerances.
DATA_PARALLEL = Tolerance(rtol=0.0, atol=1e-12)


def data_parallel(dtype: str, observations: Iterable[str], float64: Tolerance = DATA_PARALLEL) -> dict[str, Tolerance]:
    """The data-parallel checks: in float64 `float64` for every observation (DATA_PARALLEL; STRICT
    for a backend's one process against NumPy's); in float32 the scenarios' float32 tolerances,
    final weights as theirs, losses and metrics as their step losses; the step count exactly."""
    table = scenario("float32")
    tolerances = {}
    for name in observations:
        if name == "iterations":
            tolerances[name] = EXACT
        elif dtype == "float64":
            tolerances[name] = float64
        else:
            tolerances[name] = table["final_weights" if name == "final_weights" else "step_loss"]
    return tolerances
