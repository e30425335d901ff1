"""The workloads the benchmark times, each run by `bench.py` in a process of its own.

Every workload trains the blog model (Dense 64-32-16-8-4 relu, 1 sigmoid; Adam; binary
cross-entropy; batch 32) on the blog's data, or the sweep model, and returns the fit time.
The hand-written loops are the straightforward way to write that training in each engine.
`device`, where a workload takes it, is in its engine's spelling (polynn's compile(device=...),
"cuda" for torch, "/GPU:0" for TensorFlow); None is the engine's default, as bench.py runs them.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

BLOG_UNITS = (64, 32, 16, 8, 4, 1)
BLOG_SAMPLES = 10000


def blog_data():
    np.random.seed(1000)
    x = np.random.random((BLOG_SAMPLES, 10))
    y = np.random.randint(2, size=(BLOG_SAMPLES, 1))
    return x.astype(np.float32), y.astype(np.float32)


def sweep_data(width: int, samples: int):
    rng = np.random.default_rng(0)
    x = rng.random((samples, width), dtype=np.float32)
    y = (rng.random((samples, 1)) > 0.5).astype(np.float32)
    return x, y


def sweep_units(width: int):
    return (width, width, 1)


def sweep_flops_per_sample(width: int) -> int:
    """A training step's arithmetic per sample in the sweep model's matrix products: forward
    2*in*out a layer; backward 2*in*out for the kernel gradient, and 2*in*out for the input
    gradient except at the first layer."""
    flops, fan_in = 0, width
    for k, u in enumerate(sweep_units(width)):
        flops += (4 if k == 0 else 6) * fan_in * u
        fan_in = u
    return flops


def _glorot(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


# ---- polynn ------------------------------------------------------------------------------


def polynn_model(backend: str, inputs: int, units, **compile_options):
    """The workloads' model (relu layers of `units`, a sigmoid last), compiled as every polynn
    workload is; `compile_options` adds to compile's arguments (device, distribution)."""
    from polynn.layers import Dense
    from polynn.models import Sequential

    model = Sequential()
    model.add(Dense(units[0], input_dim=inputs, activation="relu"))
    for u in units[1:-1]:
        model.add(Dense(u, activation="relu"))
    model.add(Dense(units[-1], activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend=backend, seed=0,
                  **compile_options)
    return model


def polynn_fit(backend: str, x, y, units, epochs: int, batch: int, device: str | None = None) -> float:
    model = polynn_model(backend, x.shape[1], units, **({} if device is None else {"device": device}))
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
    return time.perf_counter() - start


# ---- Keras 3, as the outside reference ----------------------------------------------------


def keras_fit(engine: str, x, y, units, epochs: int, batch: int, device: str | None = None) -> float:
    import os

    os.environ["KERAS_BACKEND"] = engine
    if engine == "torch" and device is not None:
        os.environ["KERAS_TORCH_DEVICE"] = device  # Keras's torch backend reads it at import
    import keras

    scope = contextlib.nullcontext()
    if engine == "tensorflow" and device is not None:
        import tensorflow as tf

        scope = tf.device(device)
    with scope:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape=(x.shape[1],))])
        for u in units[:-1]:
            model.add(keras.layers.Dense(u, activation="relu"))
        model.add(keras.layers.Dense(units[-1], activation="sigmoid"))
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)  # its logs come back: the device is done
        return time.perf_counter() - start


# ---- hand-written loops -------------------------------------------------------------------


def numpy_fit(x, y, units, epochs: int, batch: int) -> float:
    rng = np.random.default_rng(0)
    sizes = (x.shape[1], *units)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [_glorot(rng, a, b), np.zeros(b, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    lr, b1, b2, eps, t = 1e-3, 0.9, 0.999, 1e-7, 0
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            rows = order[i:i + batch]
            xb, yb = x[rows], y[rows]
            acts = [xb]
            for k in range(0, len(params), 2):
                z = acts[-1] @ params[k] + params[k + 1]
                acts.append(np.maximum(z, 0) if k < len(params) - 2 else 1 / (1 + np.exp(-z)))
            p = np.clip(acts[-1], 1e-7, 1 - 1e-7)
            dz = (p - yb) / len(xb)  # sigmoid + binary cross-entropy
            grads = [None] * len(params)
            for k in range(len(params) - 2, -1, -2):
                grads[k] = acts[k // 2].T @ dz
                grads[k + 1] = dz.sum(0)
                if k:
                    dz = (dz @ params[k].T) * (acts[k // 2] > 0)
            t += 1
            alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            for w, g, mi, vi in zip(params, grads, m, v):
                mi += (g - mi) * (1 - b1)
                vi += (g * g - vi) * (1 - b2)
                w -= mi * alpha / (np.sqrt(vi) + eps)
    return time.perf_counter() - start


def torch_fit(x, y, units, epochs: int, batch: int, device: str | None = None) -> float:
    import torch

    torch.manual_seed(0)
    where = torch.device(device or "cpu")
    sizes = (x.shape[1], *units)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers[-1] = torch.nn.Sigmoid()
    model = torch.nn.Sequential(*layers).to(where)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.BCELoss()
    xt, yt = torch.from_numpy(x).to(where), torch.from_numpy(y).to(where)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(xt), device=where)
        for i in range(0, len(xt), batch):
            rows = order[i:i + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[rows]), yt[rows])
            loss.backward()
            optimizer.step()
    if where.type == "cuda":
        torch.cuda.synchronize(where)  # kernels run asynchronously: wait for the last step's
    return time.perf_counter() - start


def tensorflow_fit(x, y, units, epochs: int, batch: int, per_epoch: bool, device: str | None = None) -> float:
    import tensorflow as tf

    if device is not None:
        with tf.device(device):
            return _tensorflow_fit(tf, x, y, units, epochs, batch, per_epoch, synchronize=True)
    return _tensorflow_fit(tf, x, y, units, epochs, batch, per_epoch, synchronize=False)


def _tensorflow_fit(tf, x, y, units, epochs: int, batch: int, per_epoch: bool, synchronize: bool) -> float:
    rng = np.random.default_rng(0)
    sizes = (x.shape[1], *units)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [tf.Variable(_glorot(rng, a, b)), tf.Variable(tf.zeros([b]))]
    m = [tf.Variable(tf.zeros_like(p)) for p in params]
    v = [tf.Variable(tf.zeros_like(p)) for p in params]
    t = tf.Variable(0.0)
    xt, yt = tf.constant(x), tf.constant(y)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            h = xb
            for k in range(0, len(params), 2):
                z = h @ params[k] + params[k + 1]
                h = tf.nn.relu(z) if k < len(params) - 2 else tf.sigmoid(z)
            p = tf.clip_by_value(h, 1e-7, 1 - 1e-7)
            loss = -tf.reduce_mean(yb * tf.math.log(p) + (1 - yb) * tf.math.log(1 - p))
        grads = tape.gradient(loss, params)
        t.assign_add(1.0)
        alpha = 1e-3 * tf.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for w, g, mi, vi in zip(params, grads, m, v):
            mi.assign_add((g - mi) * 0.1)
            vi.assign_add((g * g - vi) * 0.001)
            w.assign_sub(mi * alpha / (tf.sqrt(vi) + 1e-7))
        return loss

    compiled_step = tf.function(step)

    @tf.function
    def epoch(order):
        n = tf.shape(order)[0]
        for i in tf.range(0, n, batch):
            rows = order[i:i + batch]
            step(tf.gather(xt, rows), tf.gather(yt, rows))

    start = time.perf_counter()
    for _ in range(epochs):
        order = tf.constant(rng.permutation(len(x)), dtype=tf.int32)
        if per_epoch:
            epoch(order)
        else:
            for i in range(0, len(x), batch):
                rows = order[i:i + batch]
                compiled_step(tf.gather(xt, rows), tf.gather(yt, rows))
    if synchronize:
        params[0].numpy()  # a GPU runs the steps asynchronously: reading a weight waits for the last
    return time.perf_counter() - start


WORKLOADS = {
    "polynn-numpy": lambda *a, **k: polynn_fit("numpy", *a, **k),
    "polynn-tensorflow": lambda *a, **k: polynn_fit("tensorflow", *a, **k),
    "polynn-torch": lambda *a, **k: polynn_fit("torch", *a, **k),
    "keras-tensorflow": lambda *a, **k: keras_fit("tensorflow", *a, **k),
    "keras-torch": lambda *a, **k: keras_fit("torch", *a, **k),
    "hand-numpy": numpy_fit,
    "hand-torch": torch_fit,
    "hand-tensorflow-step": lambda *a, **k: tensorflow_fit(*a, per_epoch=False, **k),
    "hand-tensorflow-epoch": lambda *a, **k: tensorflow_fit(*a, per_epoch=True, **k),
}
