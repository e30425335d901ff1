"""Default inputs for the per-component cases: values in each component's domain, from a fixed stream.

A loss or metric gets predictions and labels of a *domain*, chosen from its spec:
- "sparse": softmax rows and integer class labels (specs with sparse_labels, or "sparse" in the name);
- "binary": independent probabilities and 0/1 labels ("binary" in the name);
- "real": any real predictions and targets (the regression losses and metrics named below);
- "exact": 0/1 predictions and labels, so equality holds on some (exact accuracy);
- "margin": real predictions and one-hot labels (the hinge losses);
- "categorical", the default: softmax rows and one-hot labels, which every loss and metric
  spelled as Keras's accepts, so components added later get valid inputs without a table entry.
With from_logits=True the predictions are real logits instead of probabilities.
Each domain also holds edge values, on the kinks its losses' specs give a gradient for:
probabilities outside the clip range [1e-7, 1 - 1e-7] and on its bounds, a prediction equal to its
target (the zero gradient of |d| at d == 0) and |d| equal to huber's delta, hinge margins y * p == 1
and categorical_hinge's margin and ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..losses import EPSILON
from .options import ACTIVATION

# Names whose domain the spec alone does not tell.
DOMAINS = {
    "mean_squared_error": "real",
    "mean_absolute_error": "real",
    "mean_absolute_percentage_error": "real",
    "huber": "real",
    "log_cosh": "real",
    "cosine_similarity": "real",
    "hinge": "margin",
    "squared_hinge": "margin",
    "categorical_hinge": "margin",
    "exact_accuracy": "exact",
    "precision": "binary",
    "recall": "binary",
    "auc": "binary",
}

SAMPLES = 12
UNITS = 4


def domain(spec: Any) -> str:
    name = spec.name
    if name in DOMAINS:
        return DOMAINS[name]
    if getattr(spec, "sparse_labels", False) or "sparse" in name:
        return "sparse"
    if "binary" in name:
        return "binary"
    return "categorical"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# Rows whose predictions sit on a kink of the losses of their domain, so their gradient there is
# compared with the rule their spec states. The values are exact in float64; in float32 they round
# to the float32 numbers the backends compare with (EPSILON and 1 - EPSILON rounded).
#
# categorical and sparse: each row sums to exactly 1 (in float32 too), so y_pred / sum(y_pred)
# lands on the clip bounds EPSILON and 1 - EPSILON, at the labelled class (cce, scce), and
# kl_divergence's and msle's bounds at EPSILON.
BOUND_ROWS = ((1, 0, (EPSILON, 1 - EPSILON, 0.0, 0.0)), (2, 2, (0.0, 0.0, 1 - EPSILON, EPSILON)))
# margin (labels one-hot, so hinge's are -1/1 after mapping): row 0 has y * y_pred == 1 at the
# labelled class 0 and at class 1; row 1 has categorical_hinge's neg - pos + 1 == 0; row 2 a tie
# for categorical_hinge's max over the other classes, with a positive loss.
MARGIN_ROWS = ((0, 0, (1.0, -1.0, 0.375, -1.625)), (1, 0, (1.5, 0.5, -0.25, 0.25)),
               (2, 0, (0.25, 0.75, 0.75, -0.5)))


def predictions_and_labels(spec: Any, samples: int = SAMPLES, units: int = UNITS,
                           seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(predictions (samples, units), labels) in the spec's domain; integer labels have shape (samples,)."""
    rng = np.random.RandomState(seed)
    kind = domain(spec)
    if kind == "real":
        p = rng.uniform(-2.0, 2.0, (samples, units))
        y = rng.uniform(-2.0, 2.0, (samples, units))
        y[0, 0] = p[0, 0]
        # |y_pred - y_true| equal to huber's delta: 1 (its default) and 0.5 (options.LOSS).
        p[1, 1], y[1, 1] = 0.5, -0.5
        p[2, 1], y[2, 1] = 0.25, 0.75
    elif kind == "exact":
        p = rng.randint(2, size=(samples, units)).astype(np.float64)
        y = rng.randint(2, size=(samples, units)).astype(np.float64)
    elif kind == "binary":
        p = rng.uniform(0.02, 0.98, (samples, units))
        y = rng.randint(2, size=(samples, units)).astype(np.float64)
        p[0, 0], p[1, 0], p[2, 0] = 0.0, 1.0, 1e-9
        # The clip bounds themselves, under each label.
        p[3, :2], y[3, :2] = EPSILON, (1.0, 0.0)
        p[4, :2], y[4, :2] = 1 - EPSILON, (0.0, 1.0)
    elif kind == "margin":
        p = rng.uniform(-2.0, 2.0, (samples, units))
        classes = rng.randint(units, size=samples)
        for row, label, values in MARGIN_ROWS:
            p[row], classes[row] = values, label
        y = np.eye(units)[classes]
    else:
        p = _softmax(rng.normal(0.0, 1.5, (samples, units)))
        classes = rng.randint(units, size=samples)
        classes[0] = 0
        p[0, 0] = 1e-9
        for row, label, values in BOUND_ROWS:
            p[row], classes[row] = values, label
        y = classes.astype(np.float64) if kind == "sparse" else np.eye(units)[classes]
    if getattr(spec, "from_logits", False):
        p = rng.normal(0.0, 3.0, (samples, units))
    return p, y


def sample_weights(samples: int = SAMPLES, seed: int = 11) -> np.ndarray:
    """Positive weights, and one zero (Keras accepts it; 'mean_with_sample_weight' must skip it)."""
    w = np.random.RandomState(seed).uniform(0.2, 2.0, samples)
    w[3] = 0.0
    return w


# The kinks of the built-in activations: 0 (relu, leaky_relu, relu6, elu, selu; sigmoid and
# softplus switch formulas there), -3 and 3 (hard_sigmoid, hard_silu), 6 (relu6). The activation
# options' thresholds and caps (options.ACTIVATION) are added to these.
ACTIVATION_KINKS = (0.0, -3.0, 3.0, 6.0)


def activation_kinks() -> tuple:
    """ACTIVATION_KINKS and the relu options' threshold and max_value, on which activation_grid lands."""
    configured = [value for config in ACTIVATION for key, value in config.kwargs
                  if key in ("threshold", "max_value")]
    return tuple(dict.fromkeys((*ACTIVATION_KINKS, *map(float, configured))))


def activation_grid() -> np.ndarray:
    """Pre-activations (7 samples x 7 units) from -8 to 8 in steps of 1/3, the grid value nearest
    each of activation_kinks() moved onto it, shuffled with a fixed permutation so each row
    (softmax's axis) mixes signs and sizes."""
    values = np.linspace(-8.0, 8.0, 49)
    for kink in activation_kinks():
        values[np.argmin(np.abs(values - kink))] = kink
    return values[np.random.RandomState(3).permutation(49)].reshape(7, 7)


def activation_upstream(shape: tuple[int, ...]) -> np.ndarray:
    """Targets of the squared-error probe, so the upstream gradient varies from element to element."""
    return np.random.RandomState(5).uniform(-1.0, 1.0, shape)


def optimizer_problem(samples: int = 32, features: int = 5,
                      units: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, kernel, bias) of a linear least-squares problem whose gradients span four decades:
    feature j is scaled by 10**-j, so epsilon terms (Adam's, RMSprop's) weigh on the small ones."""
    rng = np.random.RandomState(13)
    x = rng.normal(size=(samples, features)) * 10.0 ** -np.arange(features)
    y = rng.normal(size=(samples, units)) * 2.0
    kernel = rng.normal(0.0, 0.5, (features, units))
    bias = rng.normal(0.0, 0.5, units)
    return x, y, kernel, bias


def op_grid(domain: str, samples: int = 6, units: int = 5,
            held: Sequence[tuple[int, int, float]] = ()) -> np.ndarray:
    """Inputs of an op case, (samples, units): distinct odd multiples of 1/128, exact in float32 and
    never 0, an integer or a half, so no op meets a kink or a tie by chance; `held` gives the cells
    ((row, column, value), values multiples of 1/128 too) a "real" grid sets on purpose, on the op
    cases' kinks and ties, and no drawn value equals one of them.

    "real": in (-2.5, 2.5); "positive": in (0.19, 3); "near_one": magnitudes in (0.5, 1.5), either
    sign, so products of a row stay near 1."""
    rng = np.random.RandomState(17)
    count = samples * units
    if domain == "positive":
        halves = rng.choice(np.arange(12, 192), count, replace=False)
    elif domain == "near_one":
        halves = rng.choice(np.arange(32, 96), count, replace=False) * rng.choice([-1, 1], count)
    else:
        taken = [int(round(value * 64 - 0.5)) for _, _, value in held]
        halves = rng.choice(np.setdiff1d(np.arange(-160, 160), taken), count, replace=False)
    values = (halves + np.where(halves >= 0, 0.5, -0.5)) / 64.0 if domain == "near_one" else (halves + 0.5) / 64.0
    grid = values.reshape(samples, units)
    if domain == "real":
        for row, column, value in held:
            grid[row, column] = value
    return grid


def op_probabilities(samples: int = 6, units: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(y_pred, y_true) of an op loss case: softmax rows, and one-hot labels of random classes."""
    rng = np.random.RandomState(19)
    p = _softmax(rng.normal(0.0, 1.0, (samples, units)))
    y = np.eye(units)[rng.randint(units, size=samples)]
    return p, y
