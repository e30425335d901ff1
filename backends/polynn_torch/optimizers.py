"""Torch optimizers: in-place updates of flat weight and slot buffers, chunk by chunk, as polynn.optimizers.

The runtime keeps the weights, the gradients and each optimizer slot in one flat tensor each (`FlatState`);
the update runs its element-wise rule over chunks small enough to stay in cache, every operation in place
or into two preallocated scratch chunks, so a step makes one pass over memory instead of a dozen passes
that each allocate an array the size of the model. Each rule computes the NumPy reference's formula;
Adam's and Nadam's moments (m + (g - m)(1 - beta)) are one `lerp_` each and Adam's step one
`addcdiv_`, 6 passes over a chunk instead of 12 (measured: docs/performance.md#torch-adam-moments-as-lerp),
the same sums rounded in a different order, so results agree to rounding, not to the bit.

On the CPU, Adam and AdamW run instead in torch's fused Adam kernel, one pass over memory on every
core (`_fused_adam`), where its rounding of the formula's constants stays within
Adam.MAX_COMPLEMENT_ERROR (measured: docs/performance.md#torch-fused-adam-kernel).

`s` maps the names of Optimizer.step_scalars to this step's values as Python floats (exact copies of
the plan-dtype scalars the core computed). torch.optim's Adam is not used as such: it adds epsilon
to the bias-corrected root, which is not the spec's formula (see `_fused_adam` for how its kernel is
given the spec's). Clipping needs whole gradients (norms), so it runs before, on autograd's gradients.
"""

from __future__ import annotations

import functools

import torch

# Elements per chunk: the six arrays a chunk touches (weights, gradients, two slots, two scratch) stay
# in L3 in either dtype, and smaller chunks lost more to per-op dispatch than they gained in cache
# (measured: docs/performance.md#torch-optimizer-chunk-size).
CHUNK = 262144

# A weight of this many elements or more is updated from its gradient where autograd left it; the
# gradients of smaller weights are gathered into one flat buffer first (see FlatState.runs). Kept
# apart from CHUNK: the fused kernel rounds a tensor's last few elements in scalar code, so which
# tensors it is given must not change with the chunk size.
GATHER_BELOW = 262144


def _sgd(spec, w, g, slots, s, t0, t1):
    torch.mul(g, s["lr"], out=t0)
    if not spec.momentum:
        w.sub_(t0)
        return
    (m,) = slots
    m.mul_(spec.effective_momentum)
    m.sub_(t0)
    if spec.nesterov:
        torch.mul(m, spec.effective_momentum, out=t1)
        t1.sub_(t0)
        w.add_(t1)
    else:
        w.add_(m)


def _moments(spec, g, m, v, t0):
    """m += (g - m) a; v += (g*g - v) b, each as one lerp (m + w (end - m)), (a, b) = spec.moment_weights."""
    a, b = spec.moment_weights
    m.lerp_(g, a)
    torch.mul(g, g, out=t0)
    v.lerp_(t0, b)


def _adam(spec, w, g, slots, s, t0, t1):
    m, v = slots[0], slots[1]
    _moments(spec, g, m, v, t0)
    if spec.amsgrad:
        v = torch.maximum(slots[2], v, out=slots[2])  # v_hat
    torch.sqrt(v, out=t1)
    t1.add_(spec.epsilon)
    w.addcdiv_(m, t1, value=-s["alpha"])


def _rmsprop(spec, w, g, slots, s, t0, t1):
    names = spec.slot_names()
    velocity = slots[0]
    velocity.mul_(spec.rho)
    torch.mul(g, g, out=t0)
    t0.mul_(1 - spec.rho)
    velocity.add_(t0)
    if spec.centered:
        average = slots[names.index("average_gradient")]
        average.mul_(spec.rho)
        torch.mul(g, 1 - spec.rho, out=t0)
        average.add_(t0)
        torch.mul(average, average, out=t1)
        torch.sub(velocity, t1, out=t1)
        t1.add_(spec.epsilon)
    else:
        torch.add(velocity, spec.epsilon, out=t1)
    t1.sqrt_()
    torch.mul(g, s["lr"], out=t0)
    t0.div_(t1)
    if spec.momentum:
        momentum = slots[names.index("momentum")]
        momentum.mul_(spec.momentum)
        momentum.add_(t0)
        w.sub_(momentum)
    else:
        w.sub_(t0)


def _adagrad(spec, w, g, slots, s, t0, t1):
    (accumulator,) = slots
    torch.mul(g, g, out=t0)
    accumulator.add_(t0)
    torch.mul(g, s["lr"], out=t0)
    torch.add(accumulator, spec.epsilon, out=t1)
    t1.sqrt_()
    t0.div_(t1)
    w.sub_(t0)


def _adadelta(spec, w, g, slots, s, t0, t1):
    accumulated_grad, accumulated_delta = slots
    accumulated_grad.mul_(spec.rho)
    torch.mul(g, g, out=t0)
    t0.mul_(1 - spec.rho)
    accumulated_grad.add_(t0)
    delta = t0
    torch.add(accumulated_delta, spec.epsilon, out=delta)
    delta.sqrt_()
    delta.mul_(g)
    torch.add(accumulated_grad, spec.epsilon, out=t1)
    t1.sqrt_()
    delta.div_(t1)
    delta.neg_()
    accumulated_delta.mul_(spec.rho)
    torch.mul(delta, delta, out=t1)
    t1.mul_(1 - spec.rho)
    accumulated_delta.add_(t1)
    torch.mul(delta, s["lr"], out=t1)
    w.add_(t1)


def _adamax(spec, w, g, slots, s, t0, t1):
    m, u = slots
    torch.sub(g, m, out=t0)
    t0.mul_(1 - spec.beta_1)
    m.add_(t0)
    u.mul_(spec.beta_2)
    torch.abs(g, out=t0)
    torch.maximum(u, t0, out=u)
    torch.mul(m, s["lr"], out=t0)
    torch.add(u, spec.epsilon, out=t1)
    t1.mul_(s["correction"])
    t0.div_(t1)
    w.sub_(t0)


def _nadam(spec, w, g, slots, s, t0, t1):
    m, v = slots
    _moments(spec, g, m, v, t0)
    m_hat = torch.mul(m, s["c_m"], out=t0)
    torch.mul(g, s["c_g"], out=t1)
    m_hat.add_(t1)
    torch.mul(v, s["c_v"], out=t1)
    t1.sqrt_()
    t1.add_(spec.epsilon)
    m_hat.mul_(s["lr"])
    m_hat.div_(t1)
    w.sub_(m_hat)


# The step count handed to torch's fused kernel. The kernel divides by its own bias corrections,
# 1 - beta**step, computed in double precision; the spec's alpha already carries Keras's, and at this
# count beta**step is exactly 0 for every beta in [0, 1), so the kernel divides by exactly 1.
_UNCORRECTED_STEP = 2.0 ** 100

# The fused kernel keeps v as v * beta_2 + (1 - beta_2) * g * g, each weight rounded to the weights'
# dtype on its own. In float32 the two then miss summing to 1, and v settles off the formula's by
# about Adam.complement_error (1.3e-5 relative at the default beta_2 = 0.999, 1.7e-4 at 0.9999).
# Up to Adam.MAX_COMPLEMENT_ERROR the fused kernel runs; beyond it the chunked rule, whose lerp has
# no such drift.


@functools.cache
def _uncorrected_step(device):
    """_UNCORRECTED_STEP as a step-count tensor. One per device is shared by every call: the kernel
    only reads its step counts (torch.optim adds 1 to them itself, before calling it)."""
    return torch.tensor(_UNCORRECTED_STEP, dtype=torch.float32, device=device)


def _fused_adam(spec, params, grads, slots, s):
    """Adam over whole tensors in torch's fused kernel: m = lerp(m, g, 1 - beta_1);
    v = v * beta_2 + (1 - beta_2) * g * g; w -= (alpha * m) / (sqrt(v) + epsilon), with the spec's alpha
    as the learning rate and the kernel's own bias corrections at 1 (`_UNCORRECTED_STEP`). amsgrad
    keeps v_hat = max(v_hat, v) in the third slot, as the spec."""
    if not params:
        return
    step = _uncorrected_step(params[0].device)
    torch._fused_adam_(params, grads, slots[0], slots[1], slots[2] if spec.amsgrad else [], [step] * len(params),
                       lr=s["alpha"], beta1=spec.beta_1, beta2=spec.beta_2, weight_decay=0.0,
                       eps=spec.epsilon, amsgrad=spec.amsgrad, maximize=False)


# Rules with a fused whole-tensor form, used where FlatState.fused says the kernel exists and
# `fused_rule` finds the spec's constants faithful in the weights' dtype.
FUSED = {_adam: _fused_adam}


def fused_kernels_available(device) -> bool:
    """Whether this backend uses torch's fused optimizer kernels on `device`: on the CPU, from torch
    2.13, the version its tests run on (the CPU kernels arrived in 2.4 and have changed since, in
    how they read the step count among others). CUDA has them too, but this backend has not been
    checked on CUDA with them, so it keeps the chunked rules there."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return torch.device(device).type == "cpu" and version >= (2, 13)


def fused_rule(spec, update, state):
    """The fused form of `update` for this spec and state, or None where the chunked rule runs."""
    fused = FUSED.get(update) if state.fused else None
    if fused is None or spec.complement_error(state.dtype) > spec.MAX_COMPLEMENT_ERROR:
        return None
    return fused


def in_place(run_ops):
    """A spec's shared `update` rule in this module's in-place form (its scratch unused)."""

    def update(spec, w, g, slots, s, t0, t1):
        new_w, new_slots = run_ops(spec.update, w, w, g, tuple(slots), s)
        for target, value in zip((w, *slots), (new_w, *new_slots)):
            target.copy_(value)

    update.per_weight = True  # one weight at a time (see apply)
    return update


# No "adamw": AdamW inherits Adam's rule, so Backend.implementation gives it "adam"'s.
UPDATES = {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop, "adagrad": _adagrad, "adadelta": _adadelta,
           "adamax": _adamax, "nadam": _nadam}


class FlatState:
    """The weights, gradients and optimizer slots of a model, each one flat tensor.

    `weights` are per-weight views of the flat weight buffer, leaves for autograd; `slots[k][i]` is
    a view of weight i's part of the k-th slot (Optimizer.slot_names() order).
    """

    def __init__(self, shapes, slot_starts, dtype, device):
        sizes = [int(torch.Size(shape).numel()) for shape in shapes]
        self.size = sum(sizes)
        self.flat_weights = torch.zeros(self.size, dtype=dtype, device=device)
        self.flat_grads = torch.empty(self.size, dtype=dtype, device=device)  # gathered runs, each step
        self.flat_slots = [torch.full((self.size,), start, dtype=dtype, device=device) for start in slot_starts]
        self.dtype = str(dtype).removeprefix("torch.")
        self.fused = fused_kernels_available(device)
        self.chunk = chunk = max(1, min(CHUNK, self.size))
        self.scratch = (torch.empty(chunk, dtype=dtype, device=device), torch.empty(chunk, dtype=dtype, device=device))
        self.weights = [view.detach().requires_grad_() for view in self._views(self.flat_weights, shapes, sizes)]
        self.slots = [self._views(flat, shapes, sizes) for flat in self.flat_slots]
        # The update walks runs of consecutive weights: a weight of GATHER_BELOW elements or more is
        # a run of its own, its gradient read where autograd left it (gathering it would read and
        # write it once more; measured: docs/performance.md#torch-gradients-read-where-they-lie);
        # smaller weights are gathered into flat_grads first.
        self.runs, at, small = [], 0, []
        for index, size in enumerate(sizes):
            if size >= GATHER_BELOW:
                if small:
                    self.runs.append((small[0][1], at, [i for i, _ in small], True))
                    small = []
                self.runs.append((at, at + size, [index], False))
            else:
                small.append((index, at))
            at += size
        if small:
            self.runs.append((small[0][1], at, [i for i, _ in small], True))

    @staticmethod
    def _views(flat, shapes, sizes):
        views, at = [], 0
        for shape, size in zip(shapes, sizes):
            views.append(flat[at:at + size].view(shape))
            at += size
        return views


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


def apply(spec, update, state, grads, s, fused=None):
    """One step: clip autograd's gradients, then decay and update chunk by chunk, run by run
    (see FlatState.runs); `fused`, the rule's fused form where `fused_rule` chose one, runs instead
    once over every run after the decay."""
    if spec.clipvalue is not None or spec.clipnorm is not None or spec.global_clipnorm is not None:
        grads = clip_gradients(spec, grads)
    if not grads:
        return
    decay = s.get("decay")
    if getattr(update, "per_weight", False):
        # A shared rule may read a whole weight (its shape, its norm), as it does on every backend.
        for i, (w, g) in enumerate(zip(state.weights, grads)):
            if decay is not None:
                w.sub_(w * decay)
            update(spec, w, g, [slot[i] for slot in state.slots], s, None, None)
        return
    scratch0, scratch1 = state.scratch
    runs = []
    for run_start, run_stop, indices, gathered in state.runs:
        if gathered:
            run_grads = state.flat_grads[run_start:run_stop]
            torch.cat([grads[i].reshape(-1) for i in indices], out=run_grads)
        else:
            # contiguous(): the fused kernel reads a gradient as dense memory.
            run_grads = grads[indices[0]].reshape(-1).contiguous()
        runs.append((run_start, run_stop, run_grads))
        if fused is not None and decay is None:
            continue
        for start in range(run_start, run_stop, state.chunk):
            stop = min(start + state.chunk, run_stop)
            w = state.flat_weights[start:stop]
            t0, t1 = scratch0[:stop - start], scratch1[:stop - start]
            if decay is not None:
                torch.mul(w, decay, out=t0)
                w.sub_(t0)
            if fused is None:
                g = run_grads[start - run_start:stop - run_start]
                update(spec, w, g, [flat[start:stop] for flat in state.flat_slots], s, t0, t1)
    if fused is not None:
        fused(spec, [state.flat_weights[a:b] for a, b, _ in runs], [g for _, _, g in runs],
              [[flat[a:b] for a, b, _ in runs] for flat in state.flat_slots], s)
