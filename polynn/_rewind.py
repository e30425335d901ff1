"""fit()'s way back to its last completed step: an occasional snapshot, and the blocks run since, replayed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import deferred_interrupts

if TYPE_CHECKING:
    from ._blocks import TrainingBlocks
    from .backend import Runtime

# A snapshot is taken once the training time since the last one reaches this many times what a
# snapshot costs: the copies then add at most 1/RATIO to training time, and going back replays at
# most that much training, plus one block (docs/performance.md, "Going back").
RATIO: float = 100


class Rewind:
    """The state of the last completed block of steps, recoverable at any moment of fit().

    A snapshot before every block would copy the weights and optimizer slots once per block, as
    much as a step of a wide model when batch-level callbacks make every block one step. Instead
    the blocks run since the last snapshot are recorded (rows, first step, learning rate): every
    draw is keyed by the step (polynn.random), so running them again from the snapshot is the same
    computation, bit for bit. A write to the model's weights between blocks (a callback's
    set_weights) takes a new snapshot before the next block.

    Under data-parallel training (`every_block`) a snapshot follows every block instead: a replayed
    block runs its all-reduces again, and each process's clock would pick different blocks to
    replay, pairing collectives of different steps (a hang); going back then replays none.
    """

    def __init__(self, runtime: Runtime, blocks: TrainingBlocks, data: Any, writes: Any,
                 every_block: bool = False) -> None:
        """writes(): a number that changes whenever the model's weights are written from outside fit."""
        self.runtime, self.blocks, self.data, self.writes = runtime, blocks, data, writes
        self.every_block = every_block
        self.snapshot: Any = None
        self.iterations = 0  # at the snapshot
        self.seen_writes: Any = None
        self.cost = 0.0  # seconds a snapshot takes
        self.since = 0.0  # seconds of training since it
        self.blocks_since: list[tuple[np.ndarray, int, float | None]] = []

    def take(self, iterations: int) -> None:
        """A snapshot now, at `iterations` completed steps."""
        self.snapshot = None  # one copy of the state at a time, never two
        started = time.perf_counter()
        self.snapshot = self.runtime.snapshot()
        self.cost = time.perf_counter() - started
        self.iterations, self.seen_writes = iterations, self.writes()
        self.since, self.blocks_since = 0.0, []

    def before_block(self, iterations: int) -> None:
        # Steps fit did not record (a callback's own fit on this model) move the state too.
        if self.snapshot is None or self.writes() != self.seen_writes or iterations != self.position():
            self.take(iterations)

    def after_block(self, rows: np.ndarray, first: int, learning_rate: float | None, seconds: float) -> None:
        """Record a block that completed (its steps counted), and take a snapshot when one is due."""
        self.blocks_since.append((rows, first, learning_rate))
        self.since += seconds
        if self.every_block or self.since >= RATIO * self.cost:
            self.take(first + len(rows))

    def position(self) -> int:
        """The step count after the last recorded block."""
        if self.blocks_since:
            rows, first, _ = self.blocks_since[-1]
            return first + len(rows)
        return self.iterations

    def replay(self, rows: np.ndarray, first: int, learning_rate: float | None) -> Any:
        masks, scalars = self.blocks.inputs(rows, first, learning_rate)
        return self.runtime.train_steps(self.data, rows, masks, scalars)

    def back(self) -> int:
        """Put back the state after the last completed block; return its step count. Interrupted,
        it leaves the snapshot's state and the caller sets the count to self.iterations."""
        self.restore()
        try:
            for rows, first, learning_rate in self.blocks_since:
                self.replay(rows, first, learning_rate)
        except BaseException:
            self.restore()
            raise
        return self.position()

    def restore(self) -> None:
        """The snapshot's state, whole: a Ctrl-C during the copies waits until they are done."""
        with deferred_interrupts():
            self.runtime.restore(self.snapshot)
