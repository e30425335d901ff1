"""The blog's training example, ported by changing only its imports; --backend picks the engine."""

import argparse

import numpy as np

from polynn.layers import Dense
from polynn.models import Sequential


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default=None, help="numpy (default), tensorflow, torch, or any installed plugin")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="seed of polynn's shared random streams")
    args = parser.parse_args(argv)

    # training dataset
    np.random.seed(1000)
    X_train = np.random.random((10000, 10))
    y_train = np.random.randint(2, size=(10000, 1))

    # validation dataset
    X_val = np.random.random((2500, 10))
    y_val = np.random.randint(2, size=(2500, 1))

    # test dataset
    X_test = np.random.random((2500, 10))
    y_test = np.random.randint(2, size=(2500, 1))

    # Define the model architecture
    model = Sequential()
    model.add(Dense(64, input_dim=10, activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(16, activation="relu"))
    model.add(Dense(8, activation="relu"))
    model.add(Dense(4, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))

    # Compile the model
    model.compile(optimizer="Adam", loss="binary_crossentropy", metrics=["accuracy"],
                  backend=args.backend, dtype=args.dtype, seed=args.seed)

    # Train the model
    model.fit(X_train, y_train, epochs=args.epochs, validation_data=(X_val, y_val))

    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    print(f"Test loss: {loss:.4f} - test accuracy: {accuracy:.4f} (backend {model.backend}, {model.dtype})")


if __name__ == "__main__":
    main()
