"""NumPy optimizers: update(spec, w, g, slots, s) changes w and its slots in place, as polynn.optimizers.

The runtime calls each rule once per step on flat buffers holding every weight (element-wise
rules give the same numbers as weight by weight).

`s` maps the names of Optimizer.step_scalars to this step's values, already in the weights' dtype.
Clipping and weight decay, shared by every optimizer, are in `apply`.
"""

from __future__ import annotations

import numpy as np


def _sgd(spec, w, g, slots, s):
    lr = s["lr"]
    if not spec.momentum:
        w -= g * lr
        return
    (m,) = slots
    m *= spec.momentum
    m -= g * lr
    if spec.nesterov:
        w += m * spec.momentum - g * lr
    else:
        w += m


def _adam(spec, w, g, slots, s):
    m, v = slots[0], slots[1]
    m += (g - m) * (1 - spec.beta_1)
    v += (g * g - v) * (1 - spec.beta_2)
    if spec.amsgrad:
        v_hat = slots[2]
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    w -= (m * s["alpha"]) / (np.sqrt(v) + spec.epsilon)


def _rmsprop(spec, w, g, slots, s):
    names = spec.slot_names()
    velocity = slots[0]
    velocity[...] = spec.rho * velocity + (1 - spec.rho) * (g * g)
    if spec.centered:
        average = slots[names.index("average_gradient")]
        average[...] = spec.rho * average + (1 - spec.rho) * g
        denominator = velocity - average * average + spec.epsilon
    else:
        denominator = velocity + spec.epsilon
    increment = (s["lr"] * g) / np.sqrt(denominator)
    if spec.momentum:
        momentum = slots[names.index("momentum")]
        momentum[...] = spec.momentum * momentum + increment
        w -= momentum
    else:
        w -= increment


def _adagrad(spec, w, g, slots, s):
    (accumulator,) = slots
    accumulator += g * g
    w -= (s["lr"] * g) / np.sqrt(accumulator + spec.epsilon)


def _adadelta(spec, w, g, slots, s):
    accumulated_grad, accumulated_delta = slots
    accumulated_grad[...] = spec.rho * accumulated_grad + (1 - spec.rho) * (g * g)
    delta = -(np.sqrt(accumulated_delta + spec.epsilon) * g) / np.sqrt(accumulated_grad + spec.epsilon)
    accumulated_delta[...] = spec.rho * accumulated_delta + (1 - spec.rho) * (delta * delta)
    w += s["lr"] * delta


def _adamax(spec, w, g, slots, s):
    m, u = slots
    m += (g - m) * (1 - spec.beta_1)
    np.maximum(spec.beta_2 * u, np.abs(g), out=u)
    w -= (s["lr"] * m) / (s["correction"] * (u + spec.epsilon))


def _nadam(spec, w, g, slots, s):
    m, v = slots
    m += (g - m) * (1 - spec.beta_1)
    v += (g * g - v) * (1 - spec.beta_2)
    m_hat = s["c_m"] * m + s["c_g"] * g
    v_hat = v * s["c_v"]
    w -= (m_hat * s["lr"]) / (np.sqrt(v_hat) + spec.epsilon)


UPDATES = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adam,
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
    "adadelta": _adadelta,
    "adamax": _adamax,
    "nadam": _nadam,
}


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
# gradients, slots, temporaries) stays in cache, so a large model's update reads memory about
# once instead of once per operation. The rules are element-wise, so the numbers do not change.
CHUNK = 1 << 15


def apply(spec, update, flat_weights, flat_grads, grads, flat_slots, s):
    """One update of every weight: clipping, weight decay, then the rule, on the flat buffers
    (`grads` are the per-weight views of `flat_grads`, for per-weight clipping)."""
    clip_gradients(spec, flat_grads, grads)
    decay = s.get("decay")
    for start in range(0, max(flat_weights.size, 1), CHUNK):
        piece = slice(start, start + CHUNK)
        w = flat_weights[piece]
        if decay is not None:
            w -= w * decay
        update(spec, w, flat_grads[piece], [slot[piece] for slot in flat_slots], s)
