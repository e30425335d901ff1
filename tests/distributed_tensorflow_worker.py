"""One process of tests/test_distributed_tensorflow.py's jobs: an edge-case model, or training until killed.

    python tests/distributed_tensorflow_worker.py edge BACKEND OUT   # writes OUT/rank<R>.npz
    python tests/distributed_tensorflow_worker.py forever           # prints "training", trains until stopped
"""

from __future__ import annotations

import os
import sys

import numpy as np

from polynn import distribution
from polynn.callbacks import Callback
from polynn.conformance import replica_worker
from polynn.layers import Dense, Dropout, Input
from polynn.models import Sequential
from polynn.optimizers import SGD


class Started(Callback):
    """Prints "training" once the first block of steps is done (every process has joined the job)."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def on_train_batch_end(self, batch, logs=None):
        if not self.said:
            self.said = True
            print("training", flush=True)


def forever() -> None:
    x, y, sample_weight = replica_worker.data()
    model = replica_worker.model()
    replica_worker.compile_model(model, "tensorflow", "float64")
    model.fit(x, y, sample_weight=sample_weight, batch_size=replica_worker.BATCH_SIZE, epochs=10**6, verbose=0,
              callbacks=[Started()])


def edge(backend: str, out: str) -> None:
    """67 rows in batches of 33: a last batch of one row, none of it on rank 1 of 2. Two loss values
    per row (mse over (rows, 2, 3) outputs), no sample weights, a frozen layer whose weight penalty
    still counts, a constraint, a dropout mask shared over the batch, SGD with momentum, device "cpu"."""
    rng = np.random.default_rng(17)
    x, y = rng.normal(size=(67, 2, 5)), rng.normal(size=(67, 2, 3))
    model = Sequential([
        Input((2, 5)),
        Dense(4, activation="tanh", kernel_regularizer="l2", trainable=False),
        Dense(6, activation="relu", kernel_constraint="max_norm", activity_regularizer="l2"),
        Dropout(0.3, noise_shape=(1, 1, 6)),
        Dense(3),
    ])
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), loss="mse", metrics=["mae"], backend=backend,
                  dtype="float64", seed=5, device="cpu" if backend == "tensorflow" else None,
                  distribution="data_parallel")
    steps = replica_worker.StepLosses()
    history = model.fit(x, y, batch_size=33, epochs=2, verbose=0, callbacks=[steps])
    observed = {f"history.{key}": np.asarray(values) for key, values in history.history.items()}
    observed["step_loss_means"] = np.asarray(steps.means)
    observed.update({f"weight.{k}": w for k, w in enumerate(model.get_weights())})
    np.savez(os.path.join(out, f"rank{distribution.rank()}.npz"), **observed)


def main(argv: list[str]) -> int:
    distribution.initialize()
    try:
        if argv[0] == "forever":
            forever()
        else:
            edge(argv[1], argv[2])
    finally:
        distribution.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
