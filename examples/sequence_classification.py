"""Sequence classification with Embedding and LSTM on generated token sequences; --backend picks the engine.

    python examples/sequence_classification.py                    # NumPy
    python examples/sequence_classification.py --backend torch    # or tensorflow, jax, any installed plugin

Each sequence holds random filler tokens and two marker tokens, OPEN and CLOSE, once each at
random places; its label is 1 when OPEN comes before CLOSE. Every sequence holds the same markers,
so a model that only counts tokens (a bag of words) stays at chance (50%): the order is the whole
signal, and the LSTM has to carry what it saw first along the sequence. The layers are Keras's
(keras.io's text examples: Embedding, then a recurrent layer, then Dense), spelled the same.
"""

import argparse

import numpy as np

from polynn.layers import LSTM, Dense, Embedding, Input
from polynn.models import Sequential

VOCABULARY = 20      # token 0 is left unused (Keras's padding index), 1 and 2 are the markers
OPEN, CLOSE = 1, 2
LENGTH = 16


def load_data(samples, seed=0):
    """(tokens, labels): int32 sequences (samples, LENGTH) and float32 labels (samples, 1)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, VOCABULARY, (samples, LENGTH)).astype(np.int32)
    # Two distinct places in each sequence, the first for OPEN.
    places = np.argsort(rng.random((samples, LENGTH)), axis=1)[:, :2]
    rows = np.arange(samples)
    tokens[rows, places[:, 0]] = OPEN
    tokens[rows, places[:, 1]] = CLOSE
    labels = (places[:, 0] < places[:, 1]).astype(np.float32).reshape(-1, 1)
    return tokens, labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default=None,
                        help="numpy (default), tensorflow, torch, jax (examples/polynn-jax) or any installed plugin")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="seed of polynn's shared random streams")
    parser.add_argument("--quiet", action="store_true", help="no summary and no progress lines")
    args = parser.parse_args(argv)

    x_train, y_train = load_data(args.train_samples, seed=0)
    x_test, y_test = load_data(args.test_samples, seed=1)
    print(len(x_train), "train sequences,", len(x_test), "test sequences of", LENGTH, "tokens")

    model = Sequential([
        Input(shape=(LENGTH,)),  # token ids: they reach Embedding as floats, which it truncates to int32
        Embedding(VOCABULARY, 16),
        LSTM(32),
        Dense(1, activation="sigmoid"),
    ])
    if not args.quiet:
        model.summary()

    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"],
                  backend=args.backend, dtype=args.dtype, seed=args.seed)
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.1,
              verbose=0 if args.quiet else "auto")

    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test loss: {loss:.4f} - test accuracy: {accuracy:.4f} (backend {model.backend}, {model.dtype})")


if __name__ == "__main__":
    main()
