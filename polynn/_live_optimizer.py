"""model.optimizer: the compiled optimizer spec, with Keras's live learning_rate and iterations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .errors import ImmutableSpecError, NotCompiledError

if TYPE_CHECKING:
    from .optimizers import Optimizer


class _Model(Protocol):
    """What the view reads of its model (polynn.models.Sequential)."""

    learning_rate: float | None
    _compiled: Any

    @property
    def iterations(self) -> int: ...


class LiveOptimizer:
    """What `model.optimizer` is once compiled: the optimizer spec as compiled, read through
    (its fields, get_config(), slot_names(), ...), with Keras's live attributes:

    - learning_rate: the rate of the next update, as Keras's optimizer.learning_rate reads after
      a callback changed it: the model's override (set by ReduceLROnPlateau,
      LearningRateScheduler or the user), else the spec's rate, or its schedule at the current
      iteration. Assigning it sets the model's rate (model.learning_rate), as Keras users do;
      refused, as in Keras, when the optimizer follows a LearningRateSchedule.
    - iterations: the updates made since compile() (model.iterations); read-only.

    The spec itself stays immutable and is `spec` (what the model saves and the backends run);
    the view compares equal to it, passes isinstance() against its class (type() is LiveOptimizer),
    and whatever takes an optimizer (compile(), polynn.optimizers.get()) takes the view as its spec. A view
    kept across a later compile() of its model refuses to read a rate that is no longer its own.
    """

    __slots__ = ("_model", "_compiled")

    def __init__(self, model: _Model, compiled: Any) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_compiled", compiled)

    @property
    def spec(self) -> Optimizer:
        """The optimizer spec as compiled (immutable)."""
        return self._compiled.optimizer  # the model's _Compiled

    def _live(self) -> _Model:
        if self._model._compiled is not self._compiled:
            raise NotCompiledError("this optimizer belongs to an earlier compile() of its model; "
                                   "read model.optimizer again for the one training now")
        return self._model

    @property
    def learning_rate(self) -> float | None:
        return self._live().learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | None) -> None:
        self._live().learning_rate = value

    @property
    def iterations(self) -> int:
        return self._live().iterations

    @property  # type: ignore[misc]  # isinstance() reads __class__: the spec's class, as a Keras optimizer is one
    def __class__(self) -> type:
        return type(self.spec)

    def __getattr__(self, name: str) -> Any:
        if name in LiveOptimizer.__slots__:  # unset (a copy made without __init__): no recursion
            raise AttributeError(name)
        return getattr(self._compiled.optimizer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "learning_rate" or name in LiveOptimizer.__slots__:  # the latter: copy.copy's
            object.__setattr__(self, name, value)
        elif name == "iterations":
            raise ImmutableSpecError(f"{type(self.spec).__name__}: iterations={value!r} cannot be set; accepted: "
                                     "none, it counts the updates fit() has made since compile()")
        else:
            setattr(self.spec, name, value)  # the spec's own error: specs are immutable

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LiveOptimizer):
            other = other.spec
        return bool(self.spec == other)

    def __hash__(self) -> int:
        return hash(self.spec)

    def __dir__(self) -> list[str]:
        return sorted({*object.__dir__(self), *dir(self.spec)})

    def __repr__(self) -> str:
        if self._model._compiled is not self._compiled:
            return f"<{self.spec!r} of an earlier compile()>"
        return f"<live {self.spec!r}: learning_rate={self._model.learning_rate!r}, iterations={self._model.iterations}>"
