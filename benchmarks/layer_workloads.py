"""The convnet and LSTM workloads the benchmark times, each run by `bench.py` in a process of its own.

convnet: Keras's MNIST convnet (Conv2D 32 3x3 relu, MaxPooling2D 2, Conv2D 64 3x3 relu,
MaxPooling2D 2, Flatten, Dropout 0.5, Dense 10 softmax; categorical cross-entropy, Adam, batch
128) on random 28x28x1 images. lstm: Embedding(VOCABULARY, 32), LSTM(64), Dense(1, sigmoid);
binary cross-entropy, Adam, batch 64, on random token sequences of LENGTH. The arithmetic does not
depend on the values, so the data is random.

Every workload is fit(x, y, epochs, batch) -> {"fit": seconds, "epochs": [seconds of each epoch]}:
the whole fit (including tracing and compiling), and each epoch apart, so that bench.py can take
the time a step from the epochs after the first. The hand-written loops are the straightforward way
to write that training in each engine: torch.nn modules, torch.optim.Adam and autograd; TensorFlow
raw ops under GradientTape, one tf.function per epoch (as workloads.py's hand-tensorflow-epoch).
"""

from __future__ import annotations

import time

import numpy as np

IMAGE = (28, 28, 1)
CLASSES = 10
VOCABULARY = 1000
LENGTH = 32
EMBEDDING = 32
LSTM_UNITS = 64
BATCH = {"convnet": 128, "lstm": 64}


def data(model: str, samples: int):
    rng = np.random.default_rng(0)
    if model == "convnet":
        x = rng.random((samples, *IMAGE), dtype=np.float32)
        y = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, samples)]
    else:
        x = rng.integers(1, VOCABULARY, (samples, LENGTH)).astype(np.int32)
        y = rng.integers(0, 2, (samples, 1)).astype(np.float32)
    return x, y


class _EpochClock:
    """Times each epoch of a fit: the clock reads at each epoch's start and end."""

    def __init__(self):
        self.epochs: list[float] = []
        self._start = 0.0

    def begin(self, *_):
        self._start = time.perf_counter()

    def end(self, *_):
        self.epochs.append(time.perf_counter() - self._start)


# ---- polynn ------------------------------------------------------------------------------


def polynn_model(model: str, backend: str, **compile_options):
    from polynn.models import Sequential

    if model == "convnet":
        from polynn.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D

        net = Sequential([
            Input(shape=IMAGE),
            Conv2D(32, kernel_size=(3, 3), activation="relu"),
            MaxPooling2D(pool_size=(2, 2)),
            Conv2D(64, kernel_size=(3, 3), activation="relu"),
            MaxPooling2D(pool_size=(2, 2)),
            Flatten(),
            Dropout(0.5),
            Dense(CLASSES, activation="softmax"),
        ])
        net.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"], backend=backend,
                    seed=0, **compile_options)
    else:
        from polynn.layers import LSTM, Dense, Embedding, Input

        net = Sequential([Input(shape=(LENGTH,)), Embedding(VOCABULARY, EMBEDDING), LSTM(LSTM_UNITS),
                          Dense(1, activation="sigmoid")])
        net.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"], backend=backend, seed=0,
                    **compile_options)
    return net


def polynn_fit(model: str, backend: str, x, y, epochs: int, batch: int) -> dict:
    from polynn.callbacks import LambdaCallback

    net = polynn_model(model, backend)
    clock = _EpochClock()
    start = time.perf_counter()
    net.fit(x, y, epochs=epochs, batch_size=batch, verbose=0,
            callbacks=[LambdaCallback(on_epoch_begin=clock.begin, on_epoch_end=clock.end)])
    return {"fit": time.perf_counter() - start, "epochs": clock.epochs}


# ---- Keras 3, as the outside reference ----------------------------------------------------


def keras_fit(model: str, engine: str, x, y, epochs: int, batch: int) -> dict:
    import os

    os.environ["KERAS_BACKEND"] = engine
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    if model == "convnet":
        net = keras.Sequential([
            keras.Input(shape=IMAGE),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(CLASSES, activation="softmax"),
        ])
        net.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    else:
        net = keras.Sequential([keras.Input(shape=(LENGTH,), dtype="int32"),
                                layers.Embedding(VOCABULARY, EMBEDDING), layers.LSTM(LSTM_UNITS),
                                layers.Dense(1, activation="sigmoid")])
        net.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    clock = _EpochClock()
    start = time.perf_counter()
    # Its logs come back at each epoch's end: the epoch's work is done.
    net.fit(x, y, epochs=epochs, batch_size=batch, verbose=0,
            callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=clock.begin, on_epoch_end=clock.end)])
    return {"fit": time.perf_counter() - start, "epochs": clock.epochs}


# ---- hand-written loops -------------------------------------------------------------------


def torch_fit(model: str, x, y, epochs: int, batch: int) -> dict:
    import torch

    torch.manual_seed(0)
    if model == "convnet":
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(64 * 5 * 5, CLASSES))
        # torch's layout is channels first: the images are moved to it once.
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        yt = torch.from_numpy(y.argmax(1))
        loss_fn = torch.nn.CrossEntropyLoss()  # softmax and categorical cross-entropy in one
    else:
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = torch.nn.Embedding(VOCABULARY, EMBEDDING)
                self.lstm = torch.nn.LSTM(EMBEDDING, LSTM_UNITS, batch_first=True)
                self.dense = torch.nn.Linear(LSTM_UNITS, 1)

            def forward(self, tokens):
                _, (h, _) = self.lstm(self.embedding(tokens))
                return torch.sigmoid(self.dense(h[-1]))

        net = Net()
        xt, yt = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y)
        loss_fn = torch.nn.BCELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    clock = _EpochClock()
    start = time.perf_counter()
    for _ in range(epochs):
        clock.begin()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            rows = order[i:i + batch]
            optimizer.zero_grad()
            loss = loss_fn(net(xt[rows]), yt[rows])
            loss.backward()
            optimizer.step()
        clock.end()
    return {"fit": time.perf_counter() - start, "epochs": clock.epochs}


def _glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def tensorflow_fit(model: str, x, y, epochs: int, batch: int) -> dict:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    if model == "convnet":
        params = [tf.Variable(_glorot(rng, (3, 3, 1, 32), 9, 9 * 32)), tf.Variable(tf.zeros([32])),
                  tf.Variable(_glorot(rng, (3, 3, 32, 64), 9 * 32, 9 * 64)), tf.Variable(tf.zeros([64])),
                  tf.Variable(_glorot(rng, (1600, CLASSES), 1600, CLASSES)), tf.Variable(tf.zeros([CLASSES]))]

        def loss_of(xb, yb):
            h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(xb, params[0], 1, "VALID") + params[1]), 2, 2, "VALID")
            h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(h, params[2], 1, "VALID") + params[3]), 2, 2, "VALID")
            h = tf.nn.dropout(tf.reshape(h, [-1, 1600]), rate=0.5)
            logits = h @ params[4] + params[5]
            return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(yb, logits))
    else:
        four = 4 * LSTM_UNITS
        params = [tf.Variable(rng.uniform(-0.05, 0.05, (VOCABULARY, EMBEDDING)).astype(np.float32)),
                  tf.Variable(_glorot(rng, (EMBEDDING, four), EMBEDDING, four)),
                  tf.Variable(_glorot(rng, (LSTM_UNITS, four), LSTM_UNITS, four)),
                  tf.Variable(tf.zeros([four])),
                  tf.Variable(_glorot(rng, (LSTM_UNITS, 1), LSTM_UNITS, 1)), tf.Variable(tf.zeros([1]))]

        def loss_of(xb, yb):
            inputs = tf.gather(params[0], xb) @ params[1] + params[3]          # (batch, LENGTH, 4 units)
            h = c = tf.zeros([tf.shape(xb)[0], LSTM_UNITS])
            # unstack: one gradient op for all the steps (a slice a step would add a full-size
            # gradient a step).
            for step_input in tf.unstack(inputs, axis=1):
                i, f, g, o = tf.split(step_input + h @ params[2], 4, axis=1)
                c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
                h = tf.sigmoid(o) * tf.tanh(c)
            logits = h @ params[4] + params[5]
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(yb, logits))

    m = [tf.Variable(tf.zeros_like(p)) for p in params]
    v = [tf.Variable(tf.zeros_like(p)) for p in params]
    t = tf.Variable(0.0)
    xt, yt = tf.constant(x), tf.constant(y)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_of(xb, yb)
        grads = tape.gradient(loss, params)
        t.assign_add(1.0)
        alpha = 1e-3 * tf.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for w, g, mi, vi in zip(params, grads, m, v):
            g = tf.convert_to_tensor(g)  # the embedding's gradient comes as IndexedSlices
            mi.assign_add((g - mi) * 0.1)
            vi.assign_add((g * g - vi) * 0.001)
            w.assign_sub(mi * alpha / (tf.sqrt(vi) + 1e-7))

    @tf.function
    def epoch(order):
        n = tf.shape(order)[0]
        for i in tf.range(0, n, batch):
            rows = order[i:i + batch]
            step(tf.gather(xt, rows), tf.gather(yt, rows))

    clock = _EpochClock()
    start = time.perf_counter()
    for _ in range(epochs):
        clock.begin()
        epoch(tf.constant(rng.permutation(len(x)), dtype=tf.int32))
        params[0].numpy()  # waits for the epoch's last update
        clock.end()
    return {"fit": time.perf_counter() - start, "epochs": clock.epochs}


WORKLOADS = {
    "polynn-numpy": lambda *a: polynn_fit(a[0], "numpy", *a[1:]),
    "polynn-tensorflow": lambda *a: polynn_fit(a[0], "tensorflow", *a[1:]),
    "polynn-torch": lambda *a: polynn_fit(a[0], "torch", *a[1:]),
    "keras-tensorflow": lambda *a: keras_fit(a[0], "tensorflow", *a[1:]),
    "keras-torch": lambda *a: keras_fit(a[0], "torch", *a[1:]),
    "hand-tensorflow": tensorflow_fit,
    "hand-torch": torch_fit,
}
