"""TensorFlow optimizers: update(spec, w, g, slots, s) -> (new w, new slots), as polynn.optimizers.

Each update returns new values instead of changing tf.Variables, and the runtime assigns them, so
the step reads like the NumPy reference with no read-after-assign ordering to reason about. The
expressions keep the reference's order of operations, so float64 results agree to the last bits.
`s` maps the names of Optimizer.step_scalars to this step's values, in the weights' dtype.
Clipping and weight decay, shared by every optimizer, are in `apply`.

The exception is a large model's Adam and AdamW: TensorFlow's fused kernel updates the variables in
place (`_fused_adam`, through `apply_fused`), the same operations in one pass over memory.
"""

from __future__ import annotations

import functools
import operator

import tensorflow as tf


def _sgd(spec, w, g, slots, s):
    lr = s["lr"]
    if not spec.momentum:
        return w - g * lr, []
    (m,) = slots
    m = m * spec.momentum - g * lr
    if spec.nesterov:
        return w + (m * spec.momentum - g * lr), [m]
    return w + m, [m]


def _adam(spec, w, g, slots, s):
    m, v = slots[0], slots[1]
    m = m + (g - m) * (1 - spec.beta_1)
    v = v + (g * g - v) * (1 - spec.beta_2)
    new_slots = [m, v]
    if spec.amsgrad:
        v = tf.math.maximum(slots[2], v)
        new_slots.append(v)
    return w - (m * s["alpha"]) / (tf.math.sqrt(v) + spec.epsilon), new_slots


def _fused_adam(spec, variables, grads, slot_variables, s):
    """Adam in TensorFlow's fused kernels, in place on the variables: ResourceApplyAdam computes
    m += (g - m) * (1 - beta_1); v += (g * g - v) * (1 - beta_2); w -= (m * lr_t) / (sqrt(v) + epsilon)
    in one pass, lr_t = lr * sqrt(1 - beta_2_power) / (1 - beta_1_power). Given the spec's alpha as lr
    and powers of 0, lr_t is alpha: the formula of `_adam`, operation for operation (float64 on the
    CPU: the same bits). The kernel forms 1 - beta in the weights' dtype where `_adam` rounds it from
    double: in float32 that moves the moments' weights by Adam.complement_error (1.3e-5 relative for
    beta_2 = 0.999), which `fused_rule` bounds."""
    if not variables:
        return
    dtype = variables[0].dtype
    zero = tf.constant(0, dtype)
    constants = {"beta1_power": zero, "beta2_power": zero, "lr": s["alpha"], "beta1": tf.constant(spec.beta_1, dtype),
                 "beta2": tf.constant(spec.beta_2, dtype), "epsilon": tf.constant(spec.epsilon, dtype)}
    for variable, g, slots in zip(variables, grads, slot_variables):
        if spec.amsgrad:
            tf.raw_ops.ResourceApplyAdamWithAmsgrad(var=variable.handle, m=slots[0].handle, v=slots[1].handle,
                                                    vhat=slots[2].handle, grad=g, **constants)
        else:
            tf.raw_ops.ResourceApplyAdam(var=variable.handle, m=slots[0].handle, v=slots[1].handle, grad=g, **constants)


def _rmsprop(spec, w, g, slots, s):
    names = spec.slot_names()
    new_slots = list(slots)
    velocity = spec.rho * slots[0] + (1 - spec.rho) * (g * g)
    new_slots[0] = velocity
    if spec.centered:
        k = names.index("average_gradient")
        average = spec.rho * slots[k] + (1 - spec.rho) * g
        new_slots[k] = average
        denominator = velocity - average * average + spec.epsilon
    else:
        denominator = velocity + spec.epsilon
    increment = (s["lr"] * g) / tf.math.sqrt(denominator)
    if spec.momentum:
        k = names.index("momentum")
        momentum = spec.momentum * slots[k] + increment
        new_slots[k] = momentum
        return w - momentum, new_slots
    return w - increment, new_slots


def _adagrad(spec, w, g, slots, s):
    accumulator = slots[0] + g * g
    return w - (s["lr"] * g) / tf.math.sqrt(accumulator + spec.epsilon), [accumulator]


def _adadelta(spec, w, g, slots, s):
    accumulated_grad, accumulated_delta = slots
    accumulated_grad = spec.rho * accumulated_grad + (1 - spec.rho) * (g * g)
    delta = -(tf.math.sqrt(accumulated_delta + spec.epsilon) * g) / tf.math.sqrt(accumulated_grad + spec.epsilon)
    accumulated_delta = spec.rho * accumulated_delta + (1 - spec.rho) * (delta * delta)
    return w + s["lr"] * delta, [accumulated_grad, accumulated_delta]


def _adamax(spec, w, g, slots, s):
    m, u = slots
    m = m + (g - m) * (1 - spec.beta_1)
    u = tf.math.maximum(spec.beta_2 * u, tf.math.abs(g))
    return w - (s["lr"] * m) / (s["correction"] * (u + spec.epsilon)), [m, u]


def _nadam(spec, w, g, slots, s):
    m, v = slots
    m = m + (g - m) * (1 - spec.beta_1)
    v = v + (g * g - v) * (1 - spec.beta_2)
    m_hat = s["c_m"] * m + s["c_g"] * g
    v_hat = v * s["c_v"]
    return w - (m_hat * s["lr"]) / (tf.math.sqrt(v_hat) + spec.epsilon), [m, v]


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


# Rules with a fused in-place form: fused(spec, variables, grads, slot_variables, s). The runtime
# uses it for a model with a weight of FUSED_MIN_SIZE elements or more: one kernel per weight costs
# more than the traced expressions for small weights (blog model, largest weight 640 elements:
# fit 2.13 s traced, 2.27 s fused, medians of 8 alternating runs) and saves passes over memory for
# large ones (width 1024, batch 256: 56.7 to 62.9 GFLOP/s, medians of 4). It also needs the kernel's
# 1 - beta within Adam.MAX_COMPLEMENT_ERROR of the formula's (in float32, Adam's default betas are).
FUSED = {_adam: _fused_adam}
FUSED_MIN_SIZE = 1 << 16


def fused_rule(spec, update, dtype, largest):
    """The fused form of `update` for this spec, weights' dtype and largest weight (elements), or
    None where the traced rule runs."""
    fused = FUSED.get(update)
    if fused is None or largest < FUSED_MIN_SIZE or spec.complement_error(dtype) > spec.MAX_COMPLEMENT_ERROR:
        return None
    return fused


def _sum_of_squares(g):
    return tf.math.reduce_sum(g * g)


def clip_gradients(spec, grads):
    """The one clipping the spec sets: clipvalue, clipnorm per weight, or global_clipnorm."""
    if spec.clipvalue is not None:
        return [tf.clip_by_value(g, -spec.clipvalue, spec.clipvalue) for g in grads]
    if spec.clipnorm is not None:
        return [g * spec.clipnorm / tf.math.maximum(tf.math.sqrt(_sum_of_squares(g)), spec.clipnorm) for g in grads]
    if spec.global_clipnorm is not None:
        # The squares of every gradient, summed weight by weight (the reference sums one flat buffer;
        # the two orders agree to rounding).
        norm = tf.math.sqrt(functools.reduce(operator.add, [_sum_of_squares(g) for g in grads]))
        return [g * spec.global_clipnorm / tf.math.maximum(norm, spec.global_clipnorm) for g in grads]
    return grads


def apply_fused(spec, fused, variables, weights, grads, slot_variables, s):
    """One step's clipping, weight decay and fused update, in place on the variables; `weights` are
    the values the step read from them."""
    if spec.clipvalue is not None or spec.clipnorm is not None or spec.global_clipnorm is not None:
        grads = clip_gradients(spec, grads)
    decay = s.get("decay")
    if decay is not None:
        for variable, w in zip(variables, weights):
            variable.assign(w - w * decay)
    fused(spec, variables, grads, slot_variables, s)


def apply(spec, update, weights, grads, slots, s):
    """New values of every weight and slot after one step's clipping, weight decay and update."""
    if spec.clipvalue is not None or spec.clipnorm is not None or spec.global_clipnorm is not None:
        grads = clip_gradients(spec, grads)
    decay = s.get("decay")
    new_weights, new_slots = [], []
    for w, g, ws in zip(weights, grads, slots):
        if decay is not None:
            w = w - w * decay
        w, ws = update(spec, w, g, ws, s)
        new_weights.append(w)
        new_slots.append(ws)
    return new_weights, new_slots
