"""The neutral random streams: initial weights, batch order and dropout masks, the same on every backend.

Every draw comes from a counter-based Philox generator whose key is the seed and the purpose, and
whose counter holds the position (layer and weight, epoch, or step and layer). A draw therefore
depends only on (seed, purpose, position): not on what was drawn before, nor on the backend, so a
resumed run sees exactly the stream an uninterrupted one would.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from .layers import WeightSpec

__all__ = ["set_random_seed", "get_random_seed", "resolve_seed", "initial_value", "batch_order", "dropout_mask"]

_INIT, _SHUFFLE, _DROPOUT = 1, 2, 3
_global_seed: int | None = None


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise InvalidArgumentError("seed", seed, "an integer in [0, 2**63)")
    return int(seed)


def set_random_seed(seed: int) -> None:
    """Set the seed used by every model compiled afterwards without its own `seed=`."""
    global _global_seed
    _global_seed = _check_seed(seed)


def get_random_seed() -> int | None:
    return _global_seed


def resolve_seed(seed: int | None) -> int:
    """An explicit seed, else the global one, else a fresh random one (a non-reproducible run)."""
    if seed is not None:
        return _check_seed(seed)
    if _global_seed is not None:
        return _global_seed
    return secrets.randbits(62)


def _generator(seed: int, purpose: int, a: int, b: int) -> np.random.Generator:
    key = np.array([seed, purpose], dtype=np.uint64)
    counter = np.array([0, 0, a, b], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key, counter=counter))


def initial_value(seed: int, layer_index: int, weight_index: int, weight_spec: WeightSpec) -> np.ndarray:
    """The float64 initial value of one weight, from its initializer on the shared stream."""
    rng = _generator(seed, _INIT, layer_index, weight_index)
    return np.asarray(weight_spec.initializer.sample(tuple(weight_spec.shape), rng), dtype=np.float64)


def batch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of n samples used in `epoch` (0-based) when shuffling."""
    return _generator(seed, _SHUFFLE, epoch, 0).permutation(n)


def dropout_mask(seed: int, step: int, layer_index: int, shape: tuple[int, ...], rate: float,
                 dtype: DTypeLike) -> np.ndarray:
    """The scaled keep mask (u >= rate) / (1 - rate) of one dropout layer at one training step."""
    u = _generator(seed, _DROPOUT, step, layer_index).random(shape)
    return np.where(u >= rate, 1.0 / (1.0 - rate), 0.0).astype(dtype, copy=False)
