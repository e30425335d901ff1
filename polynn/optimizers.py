"""Optimizer specs: the update rule every backend applies, written once here.

Order within one training step, for every optimizer (as Keras 3):
1. gradient clipping, at most one kind: clipvalue g <- clip(g, -clipvalue, clipvalue); clipnorm
   g <- g * clipnorm / max(||g||, clipnorm) per weight; global_clipnorm g <- g * global_clipnorm /
   max(||all g||, global_clipnorm), ||all g|| the norm of every gradient together;
2. weight decay, when set: w <- w - w * decay, with decay = f32(weight_decay) * lr_t;
3. the optimizer's own update below;
4. the weight's constraint, if any.

Steps 1 to 3 are written once here on polynn.ops: each optimizer's `update(w, g, slots, scalars)`
returns the new weight and slots, and `apply_updates` runs a whole step's clipping, decay and
rule over every weight. A backend runs them on its ops (its engine differentiates nothing here),
or keeps its own rule where a measurement shows that pays; the runtime applies constraints after.
The rules keep the NumPy reference's order of operations, so float64 results agree to the bit.

t counts updates already made (0 at the first step). lr_t is the learning rate, or the schedule
evaluated at t. The core computes every per-step scalar (lr_t, decay, Adam's alpha_t) once in
float64 for a block of steps (`step_scalars`) and hands them to the backend in its dtype.

Keras 3's effective arithmetic: where Keras on TensorFlow casts a hyperparameter to the weights'
dtype (`ops.cast(beta_1, dtype)`), TensorFlow rounds it to float32 first, so even a float64 model
computes with f32(x), x rounded to float32 (polynn._float32). Each docstring below writes f32(x)
where Keras does; everywhere else the value is used as given (rounded to the weights' dtype only),
as Keras does where it multiplies by the Python number itself. Weight decay is f32(weight_decay)
for every optimizer. Keras on torch converts the Python number in the weights' dtype, so there a
float64 model uses x itself; polynn follows TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import _foreign, _registry, ops
from ._float32 import float32_constant as f32
from ._spec import Component, check_bool, resolve, spec
from ._typing import Tensor
from .errors import InvalidArgumentError
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "get",
           "apply_updates", "clip_gradients"]

# Step counts stay below this, so t is exact in float64, where schedules and corrections use it,
# and far from int64's end; training refuses to pass it, and model files hold no larger count.
MAX_ITERATIONS = 2**53


@dataclasses.dataclass(frozen=True)
@_registry.register_base
class Optimizer(Component):
    """The base of optimizer specs. A subclass written once on polynn.ops defines
    `update(self, w, g, slots, scalars) -> (new_w, new_slots)`: one weight's rule (step 3 above),
    pure, `slots` in slot_names() order and `scalars` this step's values of step_scalars (tensors or
    numbers in the weights' dtype); with it the optimizer runs on every backend with an ops namespace."""

    kind: ClassVar[str] = "optimizer"
    weight_decay: float | None = dataclasses.field(default=None, kw_only=True)
    clipnorm: float | None = dataclasses.field(default=None, kw_only=True)
    clipvalue: float | None = dataclasses.field(default=None, kw_only=True)
    global_clipnorm: float | None = dataclasses.field(default=None, kw_only=True)

    if TYPE_CHECKING:
        # For type checkers only: every optimizer declares the field (polynn._registry.REQUIRED); a
        # class without `update` has no shared implementation (a backend must have its own).
        learning_rate: float | LearningRateSchedule

        def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
                   scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]: ...

    def validate(self) -> None:
        owner = type(self).__name__
        lr = self.learning_rate
        # Another engine's schedule goes to resolve too, which refuses it naming polynn's.
        if isinstance(lr, (dict, str)) or _foreign.engine_of(lr) is not None:
            self._set("learning_rate", resolve("schedule", lr))
        elif not isinstance(lr, LearningRateSchedule):
            self._number("learning_rate", low=0.0, accepted="a finite number >= 0 or a schedule")
        for name in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            value = getattr(self, name)
            if value is not None:
                self._number(name, low=0.0, low_open=name != "weight_decay")
        clipping = {n: getattr(self, n) for n in ("clipnorm", "clipvalue", "global_clipnorm")
                    if getattr(self, n) is not None}
        if len(clipping) > 1:
            raise InvalidArgumentError(
                "clipping", clipping, "at most one of clipnorm, clipvalue and global_clipnorm (as Keras)", owner=owner)

    def slot_names(self) -> tuple[str, ...]:
        """Names of the per-weight state arrays, each shaped like its weight, in a fixed order."""
        return ()

    def slot_initial_values(self) -> tuple[float, ...]:
        """The value each slot starts at (0 unless the optimizer says otherwise)."""
        return tuple(0.0 for _ in self.slot_names())

    def learning_rates(self, iterations: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """lr_t for each t in `iterations`; `learning_rate` overrides a constant rate (callbacks)."""
        if learning_rate is not None:
            return np.full(iterations.shape, float(learning_rate))
        if isinstance(self.learning_rate, LearningRateSchedule):
            return self.learning_rate(iterations.astype(np.float64))
        return np.full(iterations.shape, float(self.learning_rate))

    def step_scalars(self, iterations: np.ndarray, learning_rate: float | None = None) -> dict[str, np.ndarray]:
        """Every per-step scalar the update needs, for each t in `iterations`, in float64."""
        lr = self.learning_rates(iterations, learning_rate)
        out = {"lr": lr}
        if self.weight_decay:
            out["decay"] = f32(self.weight_decay) * lr
        return out


@spec
class SGD(Optimizer):
    """Without momentum: w <- w - lr_t * g.
    With momentum m (slot 'momentum', starts at 0): m <- f32(momentum) * m - lr_t * g, then
    w <- w + m, or with nesterov w <- w + f32(momentum) * m - lr_t * g (f32: Keras's float32 rounding)."""

    name: ClassVar[str] = "sgd"
    learning_rate: float | LearningRateSchedule = 0.01
    momentum: float = 0.0
    nesterov: bool = False

    def validate(self) -> None:
        super().validate()
        self._number("momentum", low=0.0, high=1.0)
        check_bool("SGD", "nesterov", self.nesterov)

    @property
    def effective_momentum(self) -> float:
        """f32(momentum): the momentum the update multiplies by (Keras's float32 rounding)."""
        return f32(self.momentum)

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum",) if self.momentum else ()

    def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
               scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        step = g * scalars["lr"]
        if not self.momentum:
            return w - step, ()
        momentum = self.effective_momentum
        m = slots[0] * momentum - step
        if self.nesterov:
            return w + (m * momentum - step), (m,)
        return w + m, (m,)


def _moments(spec: Any, g: Tensor, m: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Adam's and Nadam's moments: m + (g - m) * a and v + (g * g - v) * b, (a, b) = spec.moment_weights."""
    a, b = spec.moment_weights
    return m + (g - m) * a, v + (g * g - v) * b


@spec
class Adam(Optimizer):
    """m <- m + (g - m) * (1 - beta_1); v <- v + (g**2 - v) * (1 - beta_2);
    alpha_t = lr_t * sqrt(1 - f32(beta_2)**(t+1)) / (1 - f32(beta_1)**(t+1)) (the bias correction
    with Keras's float32-rounded betas; the moments use beta_1 and beta_2 as given);
    w <- w - (m * alpha_t) / (sqrt(v) + epsilon).
    With amsgrad, v_hat <- max(v_hat, v) replaces v in the last line.
    epsilon is added outside the root of the uncorrected v (Keras), unlike torch.optim.Adam."""

    name: ClassVar[str] = "adam"
    learning_rate: float | LearningRateSchedule = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    amsgrad: bool = False

    def validate(self) -> None:
        super().validate()
        self._number("beta_1", low=0.0, high=1.0, high_open=True)
        self._number("beta_2", low=0.0, high=1.0, high_open=True)
        self._number("epsilon", low=0.0)
        check_bool("Adam", "amsgrad", self.amsgrad)

    @property
    def moment_weights(self) -> tuple[float, float]:
        """(1 - beta_1, 1 - beta_2), the weights of the new gradient in the moments."""
        return 1 - self.beta_1, 1 - self.beta_2

    def slot_names(self) -> tuple[str, ...]:
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
               scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        m, v = _moments(self, g, slots[0], slots[1])
        new_slots = [m, v]
        if self.amsgrad:
            v = ops.maximum(slots[2], v)
            new_slots.append(v)
        return w - (m * scalars["alpha"]) / (ops.sqrt(v) + self.epsilon), tuple(new_slots)

    # The most complement_error may be for a backend to run such a fused kernel in place of the
    # formula's operations: float32 at the default betas (1.3e-5) is within it, beta_2 = 0.9999
    # (1.7e-4) is not. One bound for every backend, so they all fall back at the same specs.
    MAX_COMPLEMENT_ERROR: ClassVar[float] = 2e-5

    def complement_error(self, dtype: str | np.dtype[Any] | type[np.floating[Any]]) -> float:
        """How far 1 - beta formed in `dtype` (1 - dtype(beta)) lies from the formula's 1 - beta
        rounded to `dtype`, relative, the larger over beta_1 and beta_2. A fused engine kernel that
        forms the moments' weights in the weights' dtype moves its moments by about this much
        (float32: 1.3e-5 at beta_2 = 0.999, 1.7e-4 at 0.9999; float64: 0 for both)."""
        number = np.dtype(dtype).type
        errors = [abs(float(1 - number(beta)) / float(number(1 - beta)) - 1)
                  for beta in (self.beta_1, self.beta_2)]
        return max(errors)

    def step_scalars(self, iterations: np.ndarray, learning_rate: float | None = None) -> dict[str, np.ndarray]:
        out = super().step_scalars(iterations, learning_rate)
        t = iterations.astype(np.float64) + 1.0
        beta_1, beta_2 = f32(self.beta_1), f32(self.beta_2)
        out["alpha"] = out["lr"] * np.sqrt(1.0 - np.power(beta_2, t)) / (1.0 - np.power(beta_1, t))
        return out


@spec
class RMSprop(Optimizer):
    """v <- rho * v + (1 - rho) * g**2 (slot 'velocity');
    centered: a <- rho * a + (1 - rho) * g (slot 'average_gradient'), d = v - a**2 + epsilon;
    otherwise d = v + epsilon; increment = lr_t * g / sqrt(d);
    with momentum (slot 'momentum'): m <- momentum * m + increment, w <- w - m; else w <- w - increment."""

    name: ClassVar[str] = "rmsprop"
    learning_rate: float | LearningRateSchedule = 0.001
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    centered: bool = False

    def validate(self) -> None:
        super().validate()
        self._number("rho", low=0.0, high=1.0)
        self._number("momentum", low=0.0, high=1.0)
        self._number("epsilon", low=0.0)
        check_bool("RMSprop", "centered", self.centered)

    def slot_names(self) -> tuple[str, ...]:
        names = ["velocity"]
        if self.momentum:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
               scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        names = self.slot_names()
        new_slots = list(slots)
        velocity = new_slots[0] = slots[0] * self.rho + (g * g) * (1 - self.rho)
        if self.centered:
            k = names.index("average_gradient")
            average = new_slots[k] = slots[k] * self.rho + g * (1 - self.rho)
            denominator = velocity - average * average + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = (g * scalars["lr"]) / ops.sqrt(denominator)
        if not self.momentum:
            return w - increment, tuple(new_slots)
        k = names.index("momentum")
        momentum = new_slots[k] = slots[k] * self.momentum + increment
        return w - momentum, tuple(new_slots)


@spec
class AdamW(Adam):
    """Adam with decoupled weight decay, on by default: weight_decay = 0.004 (Keras 3), applied as
    f32(0.004), Keras's float32 rounding (see step 2 of the module docstring)."""

    name: ClassVar[str] = "adamw"
    weight_decay: float | None = dataclasses.field(default=0.004, kw_only=True)



@spec
class Adagrad(Optimizer):
    """a <- a + g**2 (slot 'accumulator', starts at f32(initial_accumulator_value), Keras's float32
    rounding: it starts from a Constant initializer);
    w <- w - (lr_t * g) / sqrt(a + epsilon)."""

    name: ClassVar[str] = "adagrad"
    learning_rate: float | LearningRateSchedule = 0.001
    initial_accumulator_value: float = 0.1
    epsilon: float = 1e-7

    def validate(self) -> None:
        super().validate()
        self._number("initial_accumulator_value", low=0.0)
        self._number("epsilon", low=0.0)

    def slot_names(self) -> tuple[str, ...]:
        return ("accumulator",)

    def slot_initial_values(self) -> tuple[float, ...]:
        return (f32(self.initial_accumulator_value),)

    def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
               scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        accumulator = slots[0] + g * g
        return w - (g * scalars["lr"]) / ops.sqrt(accumulator + self.epsilon), (accumulator,)


@spec
class Adadelta(Optimizer):
    """a <- rho * a + (1 - rho) * g**2 (slot 'accumulated_grad');
    delta = -(sqrt(d + epsilon) * g) / sqrt(a + epsilon) with d the slot 'accumulated_delta';
    d <- rho * d + (1 - rho) * delta**2; w <- w + lr_t * delta."""

    name: ClassVar[str] = "adadelta"
    learning_rate: float | LearningRateSchedule = 0.001
    rho: float = 0.95
    epsilon: float = 1e-7

    def validate(self) -> None:
        super().validate()
        self._number("rho", low=0.0, high=1.0)
        self._number("epsilon", low=0.0)

    def slot_names(self) -> tuple[str, ...]:
        return ("accumulated_grad", "accumulated_delta")

    def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
               scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        accumulated_grad = slots[0] * self.rho + (g * g) * (1 - self.rho)
        delta = -((ops.sqrt(slots[1] + self.epsilon) * g) / ops.sqrt(accumulated_grad + self.epsilon))
        accumulated_delta = slots[1] * self.rho + (delta * delta) * (1 - self.rho)
        return w + delta * scalars["lr"], (accumulated_grad, accumulated_delta)


@spec
class Adamax(Optimizer):
    """m <- m + (g - m) * (1 - beta_1); u <- max(beta_2 * u, |g|);
    w <- w - (lr_t * m) / (c_t * (u + epsilon)), c_t = 1 - f32(beta_1)**(t+1) (scalar 'correction',
    with Keras's float32-rounded beta_1)."""

    name: ClassVar[str] = "adamax"
    learning_rate: float | LearningRateSchedule = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def validate(self) -> None:
        super().validate()
        self._number("beta_1", low=0.0, high=1.0, high_open=True)
        self._number("beta_2", low=0.0, high=1.0, high_open=True)
        self._number("epsilon", low=0.0)

    def slot_names(self) -> tuple[str, ...]:
        return ("m", "u")

    def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
               scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        m = slots[0] + (g - slots[0]) * (1 - self.beta_1)
        u = ops.maximum(slots[1] * self.beta_2, ops.abs(g))
        return w - (m * scalars["lr"]) / ((u + self.epsilon) * scalars["correction"]), (m, u)

    def step_scalars(self, iterations: np.ndarray, learning_rate: float | None = None) -> dict[str, np.ndarray]:
        out = super().step_scalars(iterations, learning_rate)
        out["correction"] = 1.0 - np.power(f32(self.beta_1), iterations.astype(np.float64) + 1.0)
        return out


_NADAM_TERMS = 2000


@functools.lru_cache(maxsize=8)
def _nadam_momenta(beta_1: float, decay: float) -> np.ndarray:
    """beta_1 * (1 - 0.5 * decay**s) for s = 1 .. _NADAM_TERMS."""
    return beta_1 * (1.0 - 0.5 * np.power(decay, np.arange(1, _NADAM_TERMS + 1, dtype=np.float64)))


@functools.lru_cache(maxsize=8)
def _nadam_products(beta_1: float) -> np.ndarray:
    """The running product of _nadam_momenta(beta_1, 0.96)."""
    return np.cumprod(_nadam_momenta(beta_1, 0.96))


@spec
class Nadam(Optimizer):
    """With s = t + 1, mu_s = f32(beta_1) * (1 - 0.5 * f32(0.96)**s) and P_s = p_1 * ... * p_s, a running
    product of p_k = beta_1 * (1 - 0.5 * 0.96**k):
    m <- m + (g - m) * (1 - f32(beta_1)); v <- v + (g**2 - v) * (1 - f32(beta_2));
    m_hat = c_m * m + c_g * g with c_m = mu_{s+1} / (1 - P_s * mu_{s+1}), c_g = (1 - mu_s) / (1 - P_s);
    v_hat = v * c_v with c_v = 1 / (1 - f32(beta_2)**s);
    w <- w - (m_hat * lr_t) / (sqrt(v_hat) + epsilon).
    c_m, c_g and c_v are per-step scalars the core computes in float64. f32 is Keras's float32
    rounding: Keras on TensorFlow casts beta_1, beta_2 and 0.96 for the moments, mu_s and c_v, but
    multiplies its running product by the Python numbers themselves."""

    name: ClassVar[str] = "nadam"
    learning_rate: float | LearningRateSchedule = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def validate(self) -> None:
        super().validate()
        self._number("beta_1", low=0.0, high=1.0, high_open=True)
        self._number("beta_2", low=0.0, high=1.0, high_open=True)
        self._number("epsilon", low=0.0)

    @property
    def moment_weights(self) -> tuple[float, float]:
        """(1 - f32(beta_1), 1 - f32(beta_2)), the weights of the new gradient in the moments."""
        return 1 - f32(self.beta_1), 1 - f32(self.beta_2)

    def slot_names(self) -> tuple[str, ...]:
        return ("m", "v")

    def update(self, w: Tensor, g: Tensor, slots: tuple[Tensor, ...],
               scalars: Mapping[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        m, v = _moments(self, g, slots[0], slots[1])
        m_hat = m * scalars["c_m"] + g * scalars["c_g"]
        v_hat = v * scalars["c_v"]
        return w - (m_hat * scalars["lr"]) / (ops.sqrt(v_hat) + self.epsilon), (m, v)

    def step_scalars(self, iterations: np.ndarray, learning_rate: float | None = None) -> dict[str, np.ndarray]:
        out = super().step_scalars(iterations, learning_rate)
        s = iterations.astype(np.int64) + 1
        beta_1 = f32(self.beta_1)
        mu, product = _nadam_momenta(beta_1, f32(0.96)), _nadam_products(self.beta_1)
        # Past _NADAM_TERMS steps 0.96**s is below double precision, so mu_s is f32(beta_1) exactly
        # and the running product goes on as powers of beta_1: no work grows with the step count.
        tail = np.maximum(s - _NADAM_TERMS, 0)
        head = np.minimum(s, _NADAM_TERMS)
        mu_s = np.where(tail > 0, beta_1, mu[head - 1])
        mu_next = np.where(s + 1 > _NADAM_TERMS, beta_1, mu[np.minimum(s, _NADAM_TERMS - 1)])
        p_s = product[head - 1] * np.power(self.beta_1, tail.astype(np.float64))
        out["c_m"] = mu_next / (1.0 - p_s * mu_next)
        out["c_g"] = (1.0 - mu_s) / (1.0 - p_s)
        out["c_v"] = 1.0 / (1.0 - np.power(f32(self.beta_2), s.astype(np.float64)))
        return out


def get(identifier: Any) -> Optimizer:
    return resolve("optimizer", identifier)


def clip_gradients(optimizer: Optimizer, grads: Sequence[Tensor]) -> list[Tensor]:
    """The gradients after the one clipping `optimizer` sets (step 1 above), on polynn.ops:
    clipvalue, clipnorm per weight, or global_clipnorm over every gradient; unchanged without."""
    if optimizer.clipvalue is not None:
        return [ops.clip(g, -optimizer.clipvalue, optimizer.clipvalue) for g in grads]
    if optimizer.clipnorm is not None:
        limit = optimizer.clipnorm
        return [g * (limit / ops.maximum(ops.sqrt(ops.sum(g * g)), limit)) for g in grads]
    if optimizer.global_clipnorm is not None and grads:
        # One flat vector of every gradient, summed as the reference sums its flat buffer.
        flat = ops.concatenate([ops.reshape(g, (-1,)) for g in grads])
        limit = optimizer.global_clipnorm
        scale = limit / ops.maximum(ops.sqrt(ops.sum(flat * flat)), limit)
        return [g * scale for g in grads]
    return list(grads)


def apply_updates(optimizer: Optimizer, weights: Sequence[Tensor], grads: Sequence[Tensor],
                  slots: Sequence[Sequence[Tensor]], scalars: Mapping[str, Tensor],
                  update: Callable[..., tuple[Tensor, Sequence[Tensor]]] | None = None,
                  ) -> tuple[list[Tensor], list[list[Tensor]]]:
    """One training step's update of every weight, steps 1 to 3 above, on polynn.ops (run it with a
    backend's ops in force: Backend.run_ops). Returns (new weights, new slots), `slots[i]` weight i's
    in slot_names() order; `scalars` this step's values of step_scalars, in the weights' dtype.
    `update(spec, w, g, slots, scalars) -> (w, slots)` replaces the spec's own rule (a backend's
    override, Backend.implementation('optimizer', name)); constraints are the caller's, after."""
    rule = update if update is not None else type(optimizer).update
    grads = clip_gradients(optimizer, list(grads))
    decay = scalars.get("decay")
    new_weights: list[Tensor] = []
    new_slots: list[list[Tensor]] = []
    for w, g, ws in zip(weights, grads, slots):
        if decay is not None:
            w = w - w * decay
        w, ws = rule(optimizer, w, g, tuple(ws), scalars)
        new_weights.append(w)
        new_slots.append(list(ws))
    return new_weights, new_slots

