"""Torch optimizers: update(spec, weights, grads, slots, s) changes the weights and slots in place,
as polynn.optimizers, with torch._foreach_* ops over every weight at once.

slots[k] is the list, one tensor per weight, of the optimizer's k-th slot (Optimizer.slot_names()
order). `s` maps the names of Optimizer.step_scalars to this step's values as Python floats (exact
copies of the plan-dtype scalars the core computed). Each expression keeps the operation order of
the NumPy reference, so float64 results agree to rounding. torch.optim is not used: its Adam adds
epsilon to the bias-corrected root, which is not the spec's formula. Clipping and weight decay,
shared by every optimizer, are in `apply`.
"""

from __future__ import annotations

import torch


def _sgd(spec, weights, grads, slots, s):
    lr = s["lr"]
    if not spec.momentum:
        torch._foreach_sub_(weights, torch._foreach_mul(grads, lr))
        return
    (m,) = slots
    torch._foreach_mul_(m, spec.momentum)
    torch._foreach_sub_(m, torch._foreach_mul(grads, lr))
    if spec.nesterov:
        step = torch._foreach_mul(m, spec.momentum)
        torch._foreach_sub_(step, torch._foreach_mul(grads, lr))
        torch._foreach_add_(weights, step)
    else:
        torch._foreach_add_(weights, m)


def _adam(spec, weights, grads, slots, s):
    m, v = slots[0], slots[1]
    delta = torch._foreach_sub(grads, m)
    torch._foreach_mul_(delta, 1 - spec.beta_1)
    torch._foreach_add_(m, delta)
    delta = torch._foreach_mul(grads, grads)
    torch._foreach_sub_(delta, v)
    torch._foreach_mul_(delta, 1 - spec.beta_2)
    torch._foreach_add_(v, delta)
    if spec.amsgrad:
        v_hat = slots[2]
        torch._foreach_maximum_(v_hat, v)
        v = v_hat
    step = torch._foreach_mul(m, s["alpha"])
    denominator = torch._foreach_sqrt(v)
    torch._foreach_add_(denominator, spec.epsilon)
    torch._foreach_div_(step, denominator)
    torch._foreach_sub_(weights, step)


def _rmsprop(spec, weights, grads, slots, s):
    names = spec.slot_names()
    velocity = slots[0]
    torch._foreach_mul_(velocity, spec.rho)
    squares = torch._foreach_mul(grads, grads)
    torch._foreach_mul_(squares, 1 - spec.rho)
    torch._foreach_add_(velocity, squares)
    if spec.centered:
        average = slots[names.index("average_gradient")]
        torch._foreach_mul_(average, spec.rho)
        torch._foreach_add_(average, torch._foreach_mul(grads, 1 - spec.rho))
        denominator = torch._foreach_sub(velocity, torch._foreach_mul(average, average))
        torch._foreach_add_(denominator, spec.epsilon)
    else:
        denominator = torch._foreach_add(velocity, spec.epsilon)
    torch._foreach_sqrt_(denominator)
    increment = torch._foreach_mul(grads, s["lr"])
    torch._foreach_div_(increment, denominator)
    if spec.momentum:
        momentum = slots[names.index("momentum")]
        torch._foreach_mul_(momentum, spec.momentum)
        torch._foreach_add_(momentum, increment)
        torch._foreach_sub_(weights, momentum)
    else:
        torch._foreach_sub_(weights, increment)


def _adagrad(spec, weights, grads, slots, s):
    (accumulator,) = slots
    torch._foreach_add_(accumulator, torch._foreach_mul(grads, grads))
    step = torch._foreach_mul(grads, s["lr"])
    denominator = torch._foreach_add(accumulator, spec.epsilon)
    torch._foreach_sqrt_(denominator)
    torch._foreach_div_(step, denominator)
    torch._foreach_sub_(weights, step)


def _adadelta(spec, weights, grads, slots, s):
    accumulated_grad, accumulated_delta = slots
    torch._foreach_mul_(accumulated_grad, spec.rho)
    squares = torch._foreach_mul(grads, grads)
    torch._foreach_mul_(squares, 1 - spec.rho)
    torch._foreach_add_(accumulated_grad, squares)
    delta = torch._foreach_add(accumulated_delta, spec.epsilon)
    torch._foreach_sqrt_(delta)
    torch._foreach_mul_(delta, grads)
    denominator = torch._foreach_add(accumulated_grad, spec.epsilon)
    torch._foreach_sqrt_(denominator)
    torch._foreach_div_(delta, denominator)
    torch._foreach_neg_(delta)
    torch._foreach_mul_(accumulated_delta, spec.rho)
    squares = torch._foreach_mul(delta, delta)
    torch._foreach_mul_(squares, 1 - spec.rho)
    torch._foreach_add_(accumulated_delta, squares)
    torch._foreach_add_(weights, torch._foreach_mul(delta, s["lr"]))


def _adamax(spec, weights, grads, slots, s):
    m, u = slots
    delta = torch._foreach_sub(grads, m)
    torch._foreach_mul_(delta, 1 - spec.beta_1)
    torch._foreach_add_(m, delta)
    torch._foreach_mul_(u, spec.beta_2)
    torch._foreach_maximum_(u, torch._foreach_abs(grads))
    step = torch._foreach_mul(m, s["lr"])
    denominator = torch._foreach_add(u, spec.epsilon)
    torch._foreach_mul_(denominator, s["correction"])
    torch._foreach_div_(step, denominator)
    torch._foreach_sub_(weights, step)


def _nadam(spec, weights, grads, slots, s):
    m, v = slots
    delta = torch._foreach_sub(grads, m)
    torch._foreach_mul_(delta, 1 - spec.beta_1)
    torch._foreach_add_(m, delta)
    delta = torch._foreach_mul(grads, grads)
    torch._foreach_sub_(delta, v)
    torch._foreach_mul_(delta, 1 - spec.beta_2)
    torch._foreach_add_(v, delta)
    m_hat = torch._foreach_mul(m, s["c_m"])
    torch._foreach_add_(m_hat, torch._foreach_mul(grads, s["c_g"]))
    denominator = torch._foreach_mul(v, s["c_v"])
    torch._foreach_sqrt_(denominator)
    torch._foreach_add_(denominator, spec.epsilon)
    torch._foreach_mul_(m_hat, s["lr"])
    torch._foreach_div_(m_hat, denominator)
    torch._foreach_sub_(weights, m_hat)


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


def _scale_by_norm(grads, norms, limit):
    """g * limit / max(norm, limit) for each gradient and its norm."""
    scaled = torch._foreach_mul(grads, limit)
    return [g / torch.clamp(n, min=limit) for g, n in zip(scaled, norms)]


def clip_gradients(spec, grads):
    """The one clipping the spec sets: clipvalue, clipnorm per weight, or global_clipnorm."""
    if spec.clipvalue is not None:
        return torch._foreach_clamp_max(torch._foreach_clamp_min(grads, -spec.clipvalue), spec.clipvalue)
    squares = [torch.sum(g * g) for g in grads]
    if spec.clipnorm is not None:
        return _scale_by_norm(grads, [torch.sqrt(q) for q in squares], spec.clipnorm)
    total = squares[0]
    for q in squares[1:]:
        total = total + q
    norm = torch.sqrt(total)
    return _scale_by_norm(grads, [norm] * len(grads), spec.global_clipnorm)


def apply(spec, update, weights, grads, slots, s):
    if spec.clipvalue is not None or spec.clipnorm is not None or spec.global_clipnorm is not None:
        grads = clip_gradients(spec, grads)
    decay = s.get("decay")
    if decay is not None:
        torch._foreach_sub_(weights, torch._foreach_mul(weights, decay))
    update(spec, weights, grads, slots, s)
