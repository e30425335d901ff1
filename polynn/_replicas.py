"""The core's part of data-parallel training: one seed, one start state, summed metrics, chief-only writes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import _registry
from ._communicator import collective
from .errors import DistributionError, PolynnError

if TYPE_CHECKING:
    from .backend import Plan, Runtime
    from .distribution import Replica

T = TypeVar("T")

# A seed (up to 62 bits) crosses as three 21-bit pieces: float64 carries each exactly.
_SEED_PIECES = 3
_PIECE_BITS = 21


def agree_on_seed(replica: Replica, seed: int) -> int:
    """Rank 0's seed, on every process (a seed drawn at random differs from process to process)."""
    pieces = np.array([(seed >> (_PIECE_BITS * i)) & ((1 << _PIECE_BITS) - 1) for i in range(_SEED_PIECES)],
                      dtype=np.float64)
    with collective(replica.communicator, "compile()'s agreement on the seed"):
        replica.communicator.broadcast(pieces, 0)
    return sum(int(p) << (_PIECE_BITS * i) for i, p in enumerate(pieces))


def _digest(*parts: Any) -> float:
    """48 bits of a hash of the parts, as a float64 (exact)."""
    h = hashlib.blake2b(digest_size=6)
    for part in parts:
        if isinstance(part, np.ndarray):
            # A checksum of the bytes, not a hash: fast on large arrays, and differing data differs.
            contiguous = np.ascontiguousarray(part)
            h.update(contiguous.dtype.str.encode())
            h.update(repr(part.shape).encode())
            h.update(zlib.crc32(contiguous.reshape(-1).view(np.uint8).data).to_bytes(4, "little"))
        else:
            h.update(repr(part).encode())
        h.update(b"\0")
    return float(int.from_bytes(h.digest(), "little"))


def _callable_name(value: Callable[..., Any]) -> str:
    """A function's qualified name; a callable object's class's (it has no name of its own)."""
    named = value if hasattr(value, "__qualname__") else type(value)
    return f"{getattr(named, '__module__', '')}.{named.__qualname__}"


def _describe(component: Any) -> Any:
    """A component's config; for one that cannot be saved (a user function not registered), its
    class and its fields, functions by qualified name (a repr would hold a per-process address)."""
    try:
        return _registry.serialize(component)
    except PolynnError:
        fields = {f.name: getattr(component, f.name) for f in dataclasses.fields(component)}
        return {"class": type(component).__qualname__,
                "fields": {k: _callable_name(v) if callable(v) else repr(v) for k, v in fields.items()}}


def _plan_description(plan: Plan) -> str:
    components = {"layers": [_describe(layer) for layer in plan.layers], "loss": _describe(plan.loss),
                  "optimizer": _describe(plan.optimizer), "metrics": [_describe(m) for m in plan.metrics],
                  "weighted": plan.metric_weighted, "frozen": plan.frozen_weights}
    return json.dumps(components, sort_keys=True, default=repr)


def check_same_fit(replica: Replica, backend: str, plan: Plan, seed: int, settings: dict[str, Any],
                   arrays: dict[str, np.ndarray | None]) -> None:
    """Refuse, on every process, a fit() whose model, settings or data differ from rank 0's: the
    processes would run different steps and wait on each other, or silently train on different
    data. Rank 0's values are broadcast; each process marks what differs; one SUM tells all."""
    items: list[tuple[str, float, str]] = [
        ("backend", _digest(backend), backend),
        ("model and compile() configuration", _digest(_plan_description(plan), plan.dtype, plan.input_shape), ""),
        ("dtype", _digest(plan.dtype), plan.dtype),
        ("seed", _digest(seed), ""),
    ]
    for name, value in settings.items():
        exact = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**52
        items.append((name, float(value) if exact else _digest(value), repr(value)))
    for name, array in arrays.items():
        items.append((f"{name} shape", _digest(None if array is None else array.shape),
                      "none" if array is None else repr(tuple(array.shape))))
        items.append((f"{name} values", _digest(array), ""))
    comm = replica.communicator
    ours = np.array([value for _, value, _ in items], dtype=np.float64)
    chief = ours.copy()
    with collective(comm, "fit()'s check that every process has the same model and data"):
        comm.broadcast(chief, 0)
        differs = (chief != ours).astype(np.float64)
        comm.all_reduce_sum(differs)
    if not differs.any():
        return
    named = []
    for (name, value, shown), count, theirs in zip(items, differs, chief):
        if count:
            mine = f": this process (rank {comm.rank}) has {shown}" if shown and value != theirs else ""
            exact = bool(mine) and name in settings and float(theirs).is_integer() and shown == repr(int(value))
            named.append(f"{name}{mine}{f', rank 0 has {int(theirs)}' if exact else ''}")
    raise DistributionError(
        f"data-parallel fit() refused on rank {comm.rank} of {comm.world_size}: the processes differ in "
        f"{'; '.join(named)}. Every process must run the same script: the same model, compile() and fit() "
        f"arguments, on the same arrays (each takes its slice of every batch itself).")


def share_state(replica: Replica, runtime: Runtime, iterations: int, learning_rate: float | None,
                dtype: str) -> tuple[int, float | None]:
    """Rank 0's weights, optimizer slots, step count and learning-rate override on every process,
    before the first step: a process that loaded or set other weights cannot diverge unseen."""
    weights = runtime.get_weights()
    slots = runtime.get_optimizer_state()
    arrays = [*weights, *(s for per_weight in slots for s in per_weight)]
    head = np.array([iterations, np.nan if learning_rate is None else learning_rate], dtype=np.float64)
    flat = np.concatenate([head, *(np.asarray(a, dtype=np.float64).ravel() for a in arrays)])
    with collective(replica.communicator, "fit()'s copy of rank 0's weights to every process"):
        replica.communicator.broadcast(flat, 0)
    if replica.rank != 0:
        at = 2
        restored = []
        for a in arrays:
            restored.append(flat[at:at + a.size].reshape(a.shape).astype(dtype))
            at += a.size
        runtime.set_weights(restored[:len(weights)])
        per = [len(s) for s in slots]
        rest, out = restored[len(weights):], []
        for count in per:
            out.append(rest[:count])
            rest = rest[count:]
        runtime.set_optimizer_state(out)
    rate = None if np.isnan(flat[1]) else float(flat[1])
    return int(flat[0]), rate


def sum_states(replica: Replica, states: list[np.ndarray]) -> list[np.ndarray]:
    """Each metric's state summed over the processes (states are sums over samples, so the sum is
    the global batch's); one collective for all of them."""
    if not states:
        return states
    flat = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in states])
    with collective(replica.communicator, "the sum of the metric states over the processes"):
        replica.communicator.all_reduce_sum(flat)
    out, at = [], 0
    for s in states:
        out.append(flat[at:at + s.size].reshape(s.shape))
        at += s.size
    return out


def on_chief(replica: Replica | None, what: str, write: Callable[[], T]) -> T | None:
    """Run `write` (a file written) on rank 0 only, then hold every process until it is done; a
    failure on rank 0 is re-raised there and reported on the others, so none goes on believing the
    file was written. A single process just writes."""
    if replica is None or replica.world_size == 1:
        return write()
    comm = replica.communicator
    failed = np.zeros(1)
    result: T | None = None
    error: BaseException | None = None
    if comm.rank == 0:
        try:
            result = write()
        except BaseException as raised:  # reported to the others before it propagates
            failed[0], error = 1.0, raised
    with collective(comm, f"the wait for rank 0 to {what}"):
        comm.all_reduce_sum(failed)
    if error is not None:
        raise error
    if failed[0]:
        raise DistributionError(f"rank 0 failed to {what} (its error is raised there); rank {comm.rank} stops too")
    return result


def chief_only(replica: Replica | None) -> bool:
    """Whether this process writes what only one should (logs, progress): rank 0, or a lone process."""
    return replica is None or replica.rank == 0

