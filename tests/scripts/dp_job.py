"""One process of a data-parallel job the tests launch: python dp_job.py MODE OUT_DIR (see test_distributed.py)."""

import sys
from pathlib import Path

import numpy as np

import polynn
from polynn import distribution
from polynn.callbacks import LambdaCallback, ModelCheckpoint
from polynn.layers import Dense, Dropout, Input


def main(mode: str, out: Path) -> None:
    if mode == "own_group":
        import torch.distributed as dist  # the user's (or Ray Train's) group, set up before polynn's

        dist.init_process_group("gloo")
    distribution.initialize(timeout=120)
    if mode == "own_group":
        print(f"polynn sees rank {distribution.rank()} of {distribution.world_size()}")
    rng = np.random.RandomState(0)
    x = rng.random_sample((4000, 20))
    y = rng.randint(2, size=(4000, 1)).astype(np.float64)
    if mode == "mismatch" and distribution.rank() == 1:
        x[17, 3] += 0.5  # this process's data differs from rank 0's
    model = polynn.Sequential([Input((20,)), Dense(64, activation="relu"), Dropout(0.1),
                               Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], dtype="float64", seed=3,
                  distribution="data_parallel")
    epochs = 1000 if mode == "long" else 2
    callbacks = [ModelCheckpoint(str(out / "checkpoint.polynn"))]
    if mode == "raise":
        def fail(epoch, logs):
            if distribution.rank() == 1:
                raise ValueError("rank 1's own error, in a callback")

        callbacks.append(LambdaCallback(on_epoch_end=fail))  # rank 0 goes on to the next epoch's steps
    try:
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=2, callbacks=callbacks)
    finally:
        distribution.shutdown()
        if mode == "own_group":
            # The group is the user's to destroy; one left alive at exit can abort (pytorch#179291).
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
