"""Train on one backend with checkpoints, then resume training and serve predictions on another.

    python examples/resume.py --train-on torch --resume-on tensorflow

The checkpoint holds the spec, weights, optimizer state, iteration count and seed, so the resumed
run continues exactly where the first stopped; the script checks that against an uninterrupted run.
"""

import argparse
import os
import tempfile

import numpy as np

from polynn.callbacks import ModelCheckpoint
from polynn.layers import Dense, Dropout
from polynn.models import Sequential, load_model


def build(backend, dtype, seed):
    model = Sequential([
        Dense(32, input_dim=10, activation="relu"),
        Dropout(0.2),
        Dense(16, activation="relu"),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"],
                  backend=backend, dtype=dtype, seed=seed)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-on", default="numpy", help="backend of the first run (default numpy)")
    parser.add_argument("--resume-on", default="numpy", help="backend that resumes training and predicts")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=2, help="epochs before the interruption")
    parser.add_argument("--more-epochs", type=int, default=2, help="epochs after resuming")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)

    data = np.random.default_rng(args.seed)
    x_train, y_train = data.random((2000, 10)), data.integers(2, size=(2000, 1))
    x_val, y_val = data.random((500, 10)), data.integers(2, size=(500, 1))
    x_new = data.random((5, 10))
    total = args.epochs + args.more_epochs

    with tempfile.TemporaryDirectory() as folder:
        template = os.path.join(folder, "ckpt-{epoch:02d}-{val_loss:.4f}.safetensors")
        print(f"Training {args.epochs} epochs on {args.train_on} ({args.dtype}), checkpointing every epoch")
        model = build(args.train_on, args.dtype, args.seed)
        model.fit(x_train, y_train, epochs=args.epochs, validation_data=(x_val, y_val), verbose=2,
                  callbacks=[ModelCheckpoint(template, monitor="val_loss", verbose=1)])
        checkpoints = sorted(os.listdir(folder))
        print(f"Checkpoints: {', '.join(checkpoints)}")
        latest = os.path.join(folder, checkpoints[-1])

        print(f"\nResuming from {checkpoints[-1]} on {args.resume_on}, epochs {args.epochs + 1} to {total}")
        resumed = load_model(latest, backend=args.resume_on)
        print(f"Loaded: backend {resumed.backend}, {resumed.dtype}, {resumed.iterations} optimizer steps done")
        resumed.fit(x_train, y_train, epochs=total, initial_epoch=args.epochs,
                    validation_data=(x_val, y_val), verbose=2)

    print(f"\nServing predictions on {resumed.backend}:")
    for row, p in zip(x_new, resumed.predict(x_new, verbose=0)[:, 0]):
        print(f"  x[:3]={np.round(row[:3], 3)}...  P(class 1) = {p:.6f}")

    straight = build(args.train_on, args.dtype, args.seed)
    straight.fit(x_train, y_train, epochs=total, validation_data=(x_val, y_val), verbose=0)
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(resumed.get_weights(), straight.get_weights()))
    print(f"\nLargest weight difference from {total} uninterrupted epochs on {args.train_on}: {gap:.3g}")


if __name__ == "__main__":
    main()
