"""Other engines' objects (Keras, TensorFlow, PyTorch) where polynn wants its own, recognised by module name.

Nothing here imports an engine: an object is judged by the name of the module that defines it (or
its class), so `import polynn` stays free of TensorFlow, PyTorch and Keras.
"""

from __future__ import annotations

import collections.abc
import re
from typing import Any

from . import _registry, plugins
from ._custom import KINDS as _FUNCTION_KINDS
from .errors import InvalidArgumentError, UnknownComponentError

__all__ = ["engine_of", "refuse_component", "dataset_kind", "DATA_ACCEPTED"]

# Top-level package -> the engine's name in messages.
_ENGINES = {"keras": "Keras", "tf_keras": "Keras", "tensorflow": "TensorFlow", "torch": "PyTorch"}

# PyTorch names whose polynn equivalent has another name: name -> (polynn name, constructor arguments).
_TORCH_NAMES = {
    "MSELoss": ("MeanSquaredError", ""), "mse_loss": ("mean_squared_error", ""),
    "L1Loss": ("MeanAbsoluteError", ""), "l1_loss": ("mean_absolute_error", ""),
    "BCELoss": ("BinaryCrossentropy", ""), "binary_cross_entropy": ("binary_crossentropy", ""),
    "BCEWithLogitsLoss": ("BinaryCrossentropy", "from_logits=True"),
    "binary_cross_entropy_with_logits": ("BinaryCrossentropy", "from_logits=True"),
    "CrossEntropyLoss": ("SparseCategoricalCrossentropy", "from_logits=True"),
    "cross_entropy": ("SparseCategoricalCrossentropy", "from_logits=True"),
    "HuberLoss": ("Huber", ""), "huber_loss": ("huber", ""),
    "Linear": ("Dense", "units=out_features"), "LayerNorm": ("LayerNormalization", ""), "NAdam": ("Nadam", ""),
}
# What a class's name says it is, for data: Keras's PyDataset and Sequence, tf.data and torch datasets.
_DATASET_NAME = re.compile(r"Dataset|DataLoader|^Sequence$|Iterator")

DATA_ACCEPTED = ("arrays: x and y as NumPy arrays (or lists, or CPU tensors NumPy can read), one input and one "
                 "output, and validation data as validation_data=(x_val, y_val) or (x_val, y_val, sample_weight) "
                 "as in Keras; datasets, data loaders, generators and dicts are not taken (gather a dataset's "
                 "batches with numpy.concatenate)")


def engine_of(value: Any) -> tuple[str, str] | None:
    """(engine, dotted name) when `value` (an object, class or function) comes from another engine, else None."""
    module = getattr(value, "__module__", None)
    if not isinstance(module, str):
        module = type(value).__module__
    engine = _ENGINES.get(module.partition(".")[0])
    if engine is None:
        return None
    return engine, f"{module}.{_name(value)}"


def _name(value: Any) -> str:
    name = getattr(value, "__name__", None) if isinstance(value, type) or callable(value) else None
    return name if isinstance(name, str) else type(value).__name__


def _find(kind: str, name: str) -> type[Any] | None:
    try:
        return plugins.lookup(kind, name)
    except UnknownComponentError:
        return None


def _equivalent(kind: str, engine: str, name: str) -> str:
    """What to write instead, in words: polynn's component of that name (or its PyTorch counterpart)."""
    polynn_name, arguments = _TORCH_NAMES.get(name, (name, "")) if engine == "PyTorch" else (name, "")
    cls = _find(kind, polynn_name)
    if cls is not None:
        if kind == "layer" and not arguments:
            arguments = "..."
        spelled = f"{cls.__module__}.{cls.__qualname__}({arguments})"
        if arguments or kind == "layer":
            return f"polynn's equivalent is {spelled}"
        return f"polynn's equivalent is {spelled} or {cls.name!r}"
    if kind == "layer":  # an activation layer (keras.layers.ReLU, torch.nn.Tanh)
        activation = _find("activation", polynn_name)
        if activation is not None:
            return f"polynn's equivalent is polynn.layers.Activation({activation.name!r})"
    plural = kind + ("es" if kind.endswith("s") else "s")
    return f"polynn has no {kind} of that name; its {plural}: {', '.join(_registry.names(kind))}"


def refuse_component(kind: str, value: Any) -> None:
    """Raise when `value` is another engine's object (a Keras loss, a torch optimizer...) given as a
    polynn `kind`: it cannot run on polynn's backends, and would otherwise fail late or strangely."""
    found = engine_of(value)
    if found is None:
        return
    engine, dotted = found
    forms = "a name, a polynn object, or a function written with polynn.ops" if kind in _FUNCTION_KINDS \
        else "a name or a polynn object"
    raise InvalidArgumentError(
        kind, value, f"a polynn {kind} ({forms}), not a {engine} object ({dotted}), which polynn's backends do not "
                     f"run; {_equivalent(kind, engine, _name(value))}")


def dataset_kind(value: Any) -> str | None:
    """A short description when `value` is a data set polynn does not take as x or y (a dict, a
    generator or iterator, another engine's dataset or data loader), else None."""
    if isinstance(value, collections.abc.Mapping):
        return f"a dict with keys {sorted(map(str, value))[:5]}"
    for cls in type(value).__mro__:
        engine = _ENGINES.get(cls.__module__.partition(".")[0])
        if engine is not None and _DATASET_NAME.search(cls.__name__):
            return f"a {engine} data set ({type(value).__module__}.{type(value).__qualname__})"
    if isinstance(value, collections.abc.Iterator):
        return f"a {type(value).__name__}"
    return None
