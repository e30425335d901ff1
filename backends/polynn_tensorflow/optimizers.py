"""TensorFlow's own optimizer kernels: a large model's Adam and AdamW in TF's fused kernel.

Every optimizer runs the rule written once on polynn.ops (each spec's `update`, through
polynn.optimizers.apply_updates, which the runtime calls on this backend's ops): it returns new
values and the runtime assigns them to the tf.Variables, so the step reads like the NumPy
reference with no read-after-assign ordering to reason about. The exception is a large model's
Adam and AdamW: TensorFlow's fused kernel updates the variables in place (`_fused_adam`, through
`apply_fused`), the same operations in one pass over memory.
"""

from __future__ import annotations

import tensorflow as tf

from polynn.optimizers import Adam, clip_gradients


def _fused_adam(spec, variables, grads, slot_variables, s):
    """Adam in TensorFlow's fused kernels, in place on the variables: ResourceApplyAdam computes
    m += (g - m) * (1 - beta_1); v += (g * g - v) * (1 - beta_2); w -= (m * lr_t) / (sqrt(v) + epsilon)
    in one pass, lr_t = lr * sqrt(1 - beta_2_power) / (1 - beta_1_power). Given the spec's alpha as lr
    and powers of 0, lr_t is alpha: the formula of Adam.update, operation for operation (float64 on the
    CPU: the same bits). The kernel forms 1 - beta in the weights' dtype where the rule rounds it from
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


# The fused form runs for a model with a weight of FUSED_MIN_SIZE elements or more: one kernel per
# weight costs more than the traced expressions for small weights and saves passes over memory for
# large ones (measured: docs/performance.md#tensorflow-fused-adam-threshold). It also needs the
# kernel's 1 - beta within Adam.MAX_COMPLEMENT_ERROR of the formula's (in float32, Adam's default
# betas are).
FUSED_MIN_SIZE = 1 << 16


def fused_rule(spec, shared, dtype, largest):
    """The fused form of the spec's update for the weights' dtype and largest weight (elements), or
    None where the traced rule runs. `shared`: whether the spec's own `update` runs (no backend or
    plugin rule replaces it); only Adam's rule, unchanged by a subclass, has a fused form."""
    if not shared or not isinstance(spec, Adam) or type(spec).update is not Adam.update:
        return None
    if largest < FUSED_MIN_SIZE or spec.complement_error(dtype) > spec.MAX_COMPLEMENT_ERROR:
        return None
    return _fused_adam


def apply_fused(spec, fused, variables, weights, grads, slot_variables, s):
    """One step's clipping, weight decay and fused update, in place on the variables; `weights` are
    the values the step read from them. Run it on this backend's ops (clipping is polynn's)."""
    grads = clip_gradients(spec, grads)
    decay = s.get("decay")
    if decay is not None:
        for variable, w in zip(variables, weights):
            variable.assign(w - w * decay)
    fused(spec, variables, grads, slot_variables, s)
