"""NumPy optimizers: update(spec, w, g, slots, s, t0, t1) changes w and its slots in place, as polynn.optimizers.

The runtime calls each rule on pieces of flat buffers holding every weight (element-wise rules give
the same numbers as weight by weight). Each rule writes its intermediate values into the scratch
arrays t0 and t1 instead of allocating them: the comment above each rule is its formula, and the
calls compute exactly that, operation by operation, so the numbers are those of the formula
written with NumPy operators.

`s` maps the names of Optimizer.step_scalars to this step's values, already in the weights' dtype.
Clipping and weight decay, shared by every optimizer, are in `apply`.
"""

from __future__ import annotations

import numpy as np


# w -= g * lr, or with momentum (spec.effective_momentum): m = m * momentum - g * lr; w += m
# (nesterov: w += m * momentum - g * lr)
def _sgd(spec, w, g, slots, s, t0, t1):
    np.multiply(g, s["lr"], out=t0)
    if not spec.momentum:
        w -= t0
        return
    (m,) = slots
    m *= spec.effective_momentum
    m -= t0
    if spec.nesterov:
        np.multiply(m, spec.effective_momentum, out=t1)
        t1 -= t0
        w += t1
    else:
        w += m


def _moments(spec, g, m, v, t0):
    """m += (g - m) * a; v += (g * g - v) * b, (a, b) = spec.moment_weights (1 - beta_1, 1 - beta_2)."""
    a, b = spec.moment_weights
    np.subtract(g, m, out=t0)
    t0 *= a
    m += t0
    np.multiply(g, g, out=t0)
    t0 -= v
    t0 *= b
    v += t0


# moments; v_hat = max(v_hat, v) with amsgrad; w -= (m * alpha) / (sqrt(v) + epsilon)
def _adam(spec, w, g, slots, s, t0, t1):
    m, v = slots[0], slots[1]
    _moments(spec, g, m, v, t0)
    if spec.amsgrad:
        v_hat = slots[2]
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    np.multiply(m, s["alpha"], out=t0)
    np.sqrt(v, out=t1)
    t1 += spec.epsilon
    t0 /= t1
    w -= t0


# velocity = rho * velocity + (1 - rho) * (g * g)
# centered: average = rho * average + (1 - rho) * g; denominator = velocity - average * average + epsilon
# otherwise denominator = velocity + epsilon
# increment = (lr * g) / sqrt(denominator); momentum = momentum * momentum_rate + increment; w -= momentum
# (without momentum: w -= increment)
def _rmsprop(spec, w, g, slots, s, t0, t1):
    names = spec.slot_names()
    velocity = slots[0]
    np.multiply(g, g, out=t0)
    t0 *= 1 - spec.rho
    velocity *= spec.rho
    velocity += t0
    if spec.centered:
        average = slots[names.index("average_gradient")]
        np.multiply(g, 1 - spec.rho, out=t1)
        average *= spec.rho
        average += t1
        np.multiply(average, average, out=t1)
        np.subtract(velocity, t1, out=t1)
        t1 += spec.epsilon
    else:
        np.add(velocity, spec.epsilon, out=t1)
    np.sqrt(t1, out=t1)
    np.multiply(g, s["lr"], out=t0)
    t0 /= t1
    if spec.momentum:
        momentum = slots[names.index("momentum")]
        momentum *= spec.momentum
        momentum += t0
        w -= momentum
    else:
        w -= t0


# accumulator += g * g; w -= (lr * g) / sqrt(accumulator + epsilon)
def _adagrad(spec, w, g, slots, s, t0, t1):
    (accumulator,) = slots
    np.multiply(g, g, out=t0)
    accumulator += t0
    np.add(accumulator, spec.epsilon, out=t1)
    np.sqrt(t1, out=t1)
    np.multiply(g, s["lr"], out=t0)
    t0 /= t1
    w -= t0


# accumulated_grad = rho * accumulated_grad + (1 - rho) * (g * g)
# delta = -(sqrt(accumulated_delta + epsilon) * g) / sqrt(accumulated_grad + epsilon)
# accumulated_delta = rho * accumulated_delta + (1 - rho) * (delta * delta); w += lr * delta
def _adadelta(spec, w, g, slots, s, t0, t1):
    accumulated_grad, accumulated_delta = slots
    np.multiply(g, g, out=t0)
    t0 *= 1 - spec.rho
    accumulated_grad *= spec.rho
    accumulated_grad += t0
    delta = t0
    np.add(accumulated_delta, spec.epsilon, out=delta)
    np.sqrt(delta, out=delta)
    delta *= g
    np.add(accumulated_grad, spec.epsilon, out=t1)
    np.sqrt(t1, out=t1)
    delta /= t1
    np.negative(delta, out=delta)
    np.multiply(delta, delta, out=t1)
    t1 *= 1 - spec.rho
    accumulated_delta *= spec.rho
    accumulated_delta += t1
    delta *= s["lr"]
    w += delta


# m += (g - m) * (1 - beta_1); u = max(beta_2 * u, |g|); w -= (lr * m) / (correction * (u + epsilon))
def _adamax(spec, w, g, slots, s, t0, t1):
    m, u = slots
    np.subtract(g, m, out=t0)
    t0 *= 1 - spec.beta_1
    m += t0
    u *= spec.beta_2
    np.abs(g, out=t0)
    np.maximum(u, t0, out=u)
    np.multiply(m, s["lr"], out=t0)
    np.add(u, spec.epsilon, out=t1)
    t1 *= s["correction"]
    t0 /= t1
    w -= t0


# moments; m_hat = c_m * m + c_g * g; v_hat = v * c_v; w -= (m_hat * lr) / (sqrt(v_hat) + epsilon)
def _nadam(spec, w, g, slots, s, t0, t1):
    m, v = slots
    _moments(spec, g, m, v, t0)
    m_hat = t0
    np.multiply(m, s["c_m"], out=m_hat)
    np.multiply(g, s["c_g"], out=t1)
    m_hat += t1
    np.multiply(v, s["c_v"], out=t1)
    np.sqrt(t1, out=t1)
    t1 += spec.epsilon
    m_hat *= s["lr"]
    m_hat /= t1
    w -= m_hat


# No "adamw": AdamW inherits Adam's rule, so Backend.implementation gives it "adam"'s.
UPDATES = {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop, "adagrad": _adagrad, "adadelta": _adadelta,
           "adamax": _adamax, "nadam": _nadam}


def clip_gradients(spec, flat_grads, grads):
    """The one clipping the spec sets, in place: clipvalue, clipnorm per weight, or global_clipnorm."""
    if spec.clipvalue is not None:
        np.clip(flat_grads, -spec.clipvalue, spec.clipvalue, out=flat_grads)
    elif spec.clipnorm is not None:
        for g in grads:
            g *= spec.clipnorm / np.maximum(np.sqrt(np.sum(g * g)), spec.clipnorm)
    elif spec.global_clipnorm is not None:
        norm = np.sqrt(np.sum(flat_grads * flat_grads))
        flat_grads *= spec.global_clipnorm / np.maximum(norm, spec.global_clipnorm)


# Elements per piece of the flat buffers the rule runs on: a piece of every buffer (weights,
# gradients, slots, the two scratch arrays) stays in cache, so a large model's update reads memory
# about once instead of once per operation (measured: docs/performance.md#numpy-optimizer-chunk-size).
# The rules are element-wise, so the numbers do not change.
CHUNK = 1 << 17


def scratch(size: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The two scratch arrays `apply` needs for a model of `size` weights."""
    n = max(1, min(CHUNK, size))
    return np.empty(n, dtype), np.empty(n, dtype)


def apply(spec, update, flat_weights, flat_grads, grads, flat_slots, s, scratch_arrays, weights=(), slots=()):
    """One update of every weight: clipping, weight decay, then the rule, on the flat buffers
    (`grads` are the per-weight views of `flat_grads`, for per-weight clipping). A rule marked
    `per_weight` (a spec's shared update) runs on each weight's views (`weights`, `slots`) instead."""
    clip_gradients(spec, flat_grads, grads)
    decay = s.get("decay")
    if getattr(update, "per_weight", False):
        # A shared rule may read a whole weight (its shape, its norm), as it does on every backend.
        for w, g, weight_slots in zip(weights, grads, slots):
            if decay is not None:
                w -= w * decay
            update(spec, w, g, weight_slots, s, None, None)
        return
    size = flat_weights.size
    step = scratch_arrays[0].size
    for start in range(0, max(size, 1), step):
        piece = slice(start, start + step)
        n = min(step, size - start)
        t0, t1 = scratch_arrays[0][:n], scratch_arrays[1][:n]
        w = flat_weights[piece]
        if decay is not None:
            np.multiply(w, decay, out=t0)
            w -= t0
        update(spec, w, flat_grads[piece], [slot[piece] for slot in flat_slots], s, t0, t1)
