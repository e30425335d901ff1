"""Default inputs for the per-component cases: values in each component's domain, from a fixed stream.

A loss or metric gets predictions and labels of a *domain*, chosen from its spec:
- "sparse": softmax rows and integer class labels (specs with sparse_labels, or "sparse" in the name);
- "binary": independent probabilities and 0/1 labels ("binary" in the name);
- "real": any real predictions and targets (the regression losses and metrics named below);
- "exact": 0/1 predictions and labels, so equality holds on some (exact accuracy);
- "categorical", the default: softmax rows and one-hot labels, which every loss and metric
  spelled as Keras's accepts, so components added later get valid inputs without a table entry.
With from_logits=True the predictions are real logits instead of probabilities.
Each domain also holds a few edge values: probabilities outside the clip range [1e-7, 1 - 1e-7],
and a prediction equal to its target (the documented zero gradient of |d| at d == 0).
"""

from __future__ import annotations

import numpy as np

# Names whose domain the spec alone does not tell.
DOMAINS = {
    "mean_squared_error": "real",
    "mean_absolute_error": "real",
    "mean_absolute_percentage_error": "real",
    "huber": "real",
    "log_cosh": "real",
    "cosine_similarity": "real",
    "exact_accuracy": "exact",
    "precision": "binary",
    "recall": "binary",
    "auc": "binary",
}

SAMPLES = 12
UNITS = 4


def domain(spec) -> str:
    name = spec.name
    if name in DOMAINS:
        return DOMAINS[name]
    if getattr(spec, "sparse_labels", False) or "sparse" in name:
        return "sparse"
    if "binary" in name:
        return "binary"
    return "categorical"


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def predictions_and_labels(spec, samples: int = SAMPLES, units: int = UNITS, seed: int = 7):
    """(predictions (samples, units), labels) in the spec's domain; integer labels have shape (samples,)."""
    rng = np.random.RandomState(seed)
    kind = domain(spec)
    if kind == "real":
        p = rng.uniform(-2.0, 2.0, (samples, units))
        y = rng.uniform(-2.0, 2.0, (samples, units))
        y[0, 0] = p[0, 0]
    elif kind == "exact":
        p = rng.randint(2, size=(samples, units)).astype(np.float64)
        y = rng.randint(2, size=(samples, units)).astype(np.float64)
    elif kind == "binary":
        p = rng.uniform(0.02, 0.98, (samples, units))
        y = rng.randint(2, size=(samples, units)).astype(np.float64)
        p[0, 0], p[1, 0], p[2, 0] = 0.0, 1.0, 1e-9
    else:
        p = _softmax(rng.normal(0.0, 1.5, (samples, units)))
        classes = rng.randint(units, size=samples)
        classes[0] = 0
        p[0, 0] = 1e-9
        y = classes.astype(np.float64) if kind == "sparse" else np.eye(units)[classes]
    if getattr(spec, "from_logits", False):
        p = rng.normal(0.0, 3.0, (samples, units))
    return p, y


def sample_weights(samples: int = SAMPLES, seed: int = 11) -> np.ndarray:
    """Positive weights, and one zero (Keras accepts it; 'mean_with_sample_weight' must skip it)."""
    w = np.random.RandomState(seed).uniform(0.2, 2.0, samples)
    w[3] = 0.0
    return w


def activation_grid() -> np.ndarray:
    """Pre-activations (7 samples x 7 units) from -8 to 8, 0 included (the kink of relu and kin),
    shuffled with a fixed permutation so each row (softmax's axis) mixes signs and sizes."""
    values = np.linspace(-8.0, 8.0, 49)
    return values[np.random.RandomState(3).permutation(49)].reshape(7, 7)


def activation_upstream(shape) -> np.ndarray:
    """Targets of the squared-error probe, so the upstream gradient varies from element to element."""
    return np.random.RandomState(5).uniform(-1.0, 1.0, shape)


def optimizer_problem(samples: int = 32, features: int = 5, units: int = 3):
    """(x, y, kernel, bias) of a linear least-squares problem whose gradients span four decades:
    feature j is scaled by 10**-j, so epsilon terms (Adam's, RMSprop's) weigh on the small ones."""
    rng = np.random.RandomState(13)
    x = rng.normal(size=(samples, features)) * 10.0 ** -np.arange(features)
    y = rng.normal(size=(samples, units)) * 2.0
    kernel = rng.normal(0.0, 0.5, (features, units))
    bias = rng.normal(0.0, 0.5, units)
    return x, y, kernel, bias


def op_grid(domain: str, samples: int = 6, units: int = 5, tie: float | None = None) -> np.ndarray:
    """Inputs of an op case, (samples, units): distinct odd multiples of 1/128, exact in float32 and
    never 0, an integer or a half, so no op meets a kink or a tie, except at `tie` (an odd multiple
    of 1/128 too), which a real grid holds on purpose.

    "real": in (-2.5, 2.5); "positive": in (0.19, 3); "near_one": magnitudes in (0.5, 1.5), either
    sign, so products of a row stay near 1."""
    rng = np.random.RandomState(17)
    count = samples * units
    if domain == "positive":
        halves = rng.choice(np.arange(12, 192), count, replace=False)
    elif domain == "near_one":
        halves = rng.choice(np.arange(32, 96), count, replace=False) * rng.choice([-1, 1], count)
    else:
        candidates = np.arange(-160, 160)
        forced = [] if tie is None else [int(round(tie * 64 - 0.5))]
        halves = rng.choice(np.setdiff1d(candidates, forced), count - len(forced), replace=False)
        halves = rng.permutation(np.concatenate([halves, forced]).astype(np.int64))
    values = (halves + np.where(halves >= 0, 0.5, -0.5)) / 64.0 if domain == "near_one" else (halves + 0.5) / 64.0
    return values.reshape(samples, units)


def op_probabilities(samples: int = 6, units: int = 5):
    """(y_pred, y_true) of an op loss case: softmax rows, and one-hot labels of random classes."""
    rng = np.random.RandomState(19)
    p = _softmax(rng.normal(0.0, 1.0, (samples, units)))
    y = np.eye(units)[rng.randint(units, size=samples)]
    return p, y
