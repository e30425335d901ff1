"""One process of the kit's data-parallel check: trains the blog model and writes what it observed to a file.

Run by `polynn conformance BACKEND --world-size N` (and the tests) as every process of a job:
    python -m polynn.conformance.replica_worker --backend numpy --dtype float64 --out DIR
It joins the job from the launcher's environment (polynn.distribution.initialize()), trains with
distribution="data_parallel" and writes DIR/rank<R>.npz: the History, the per-step losses and
the final weights. --save FILE saves the model at the end (rank 0 writes it); --load FILE
--initial-epoch I continues a saved run, so a checkpoint written at one world size can be
continued at another. --engine NAME joins the job on the engine a backend's make_communicator()
offers (initialize(engine=NAME)) instead of the one the environment implies.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import distribution
from ..callbacks import Callback
from ..layers import Dense, Dropout, Input
from ..models import Sequential, load_model

# The blog's model (five ReLU layers and a sigmoid) with Dropout, an L2 kernel regularizer, an L1
# activity regularizer and sample weights, on a global batch of 33: a batch that splits unevenly
# (17 and 16 rows on 2 processes) and a last batch of 10 rows.
SAMPLES = 1000
BATCH_SIZE = 33
EPOCHS = 3
SEED = 1234


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.RandomState(1000)
    x = rng.random_sample((SAMPLES, 10))
    y = rng.randint(2, size=(SAMPLES, 1)).astype(np.float64)
    sample_weight = rng.random_sample(SAMPLES) * 2
    return x, y, sample_weight


def model() -> Sequential:
    layers: list[Any] = [Input((10,))]
    for i, units in enumerate((64, 32, 16, 8, 4)):
        layers.append(Dense(units, activation="relu", kernel_regularizer="l2" if i == 0 else None,
                            activity_regularizer="l1" if i == 1 else None))
        layers.append(Dropout(0.2))
    layers.append(Dense(1, activation="sigmoid"))
    return Sequential(layers)


def compile_model(m: Sequential, backend: str, dtype: str) -> None:
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], weighted_metrics=["auc"],
              backend=backend, dtype=dtype, seed=SEED, distribution="data_parallel")


class StepLosses(Callback):
    """The loss fit logs after each training step: the running mean over the epoch so far."""

    def __init__(self) -> None:
        super().__init__()
        self.means: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.means.append(float((logs or {})["loss"]))


def run(backend: str, dtype: str, out: str, save: str | None, load: str | None,
        epochs: int, initial_epoch: int) -> None:
    x, y, sample_weight = data()
    if load:
        m = load_model(load, backend=backend, dtype=dtype, distribution="data_parallel")
    else:
        m = model()
        compile_model(m, backend, dtype)
    steps = StepLosses()
    history = m.fit(x, y, sample_weight=sample_weight, batch_size=BATCH_SIZE, epochs=epochs,
                    initial_epoch=initial_epoch, verbose=0, callbacks=[steps],
                    validation_data=(x[:200], y[:200]))
    if save:
        m.save(save)
    observed: dict[str, Any] = {f"history.{key}": np.asarray(values, dtype=np.float64)
                                for key, values in history.history.items()}
    observed["step_loss_means"] = np.asarray(steps.means, dtype=np.float64)
    for k, w in enumerate(m.get_weights()):
        observed[f"weight.{k}"] = np.asarray(w)
    observed["iterations"] = np.asarray(m.iterations)
    np.savez(os.path.join(out, f"rank{distribution.rank()}.npz"), **observed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polynn.conformance.replica_worker")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--save")
    parser.add_argument("--load")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--initial-epoch", type=int, default=0)
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args(argv)
    distribution.initialize(engine=args.engine)
    try:
        run(args.backend, args.dtype, args.out, args.save, args.load, args.epochs, args.initial_epoch)
    finally:
        distribution.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
