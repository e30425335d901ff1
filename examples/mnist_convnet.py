"""Keras's MNIST convnet example on generated digits (no download); --backend picks the engine.

    python examples/mnist_convnet.py                      # NumPy, the default (its time: docs/performance.md)
    python examples/mnist_convnet.py --backend torch      # or tensorflow, jax, any installed plugin

The model, loss, optimizer and batch size are keras.io/examples/vision/mnist_convnet's, spelled
the same; only the data differs. MNIST is a download, so the digits here are drawn: each class is
a few pen strokes (lines and arcs), and every image bends, slants, scales, shifts and thickens
them at random, then adds noise, from a fixed seed. The task is easier than MNIST, so a few
epochs on a few thousand images reach a test accuracy far above chance (10%).
"""

import argparse
import functools

import numpy as np

from polynn.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
from polynn.models import Sequential

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)


# ---- the data: digits drawn as pen strokes ----------------------------------------------------


def _arc(cx, cy, rx, ry, start, stop, points=16):
    """A polyline along an ellipse, angles in turns (0 = right, 0.25 = down: image rows grow down)."""
    t = np.linspace(start, stop, points) * 2 * np.pi
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(*points):
    return np.array(points, dtype=float)


# Each digit: strokes in a unit box, (x, y) with y growing downwards.
STROKES = {
    0: [_arc(0.5, 0.5, 0.27, 0.38, 0, 1, 24)],
    1: [_line((0.36, 0.25), (0.52, 0.1), (0.52, 0.9))],
    2: [np.concatenate([_arc(0.5, 0.33, 0.25, 0.22, 0.5, 1.08), _line((0.22, 0.9), (0.8, 0.9))])],
    3: [_arc(0.47, 0.3, 0.22, 0.19, -0.4, 0.25), _arc(0.47, 0.68, 0.25, 0.22, -0.25, 0.42)],
    4: [_line((0.66, 0.9), (0.66, 0.1), (0.18, 0.64), (0.82, 0.64))],
    5: [np.concatenate([_line((0.76, 0.1), (0.32, 0.1), (0.28, 0.46)), _arc(0.48, 0.65, 0.25, 0.24, -0.36, 0.4)])],
    6: [_arc(0.62, 0.62, 0.38, 0.52, 0.7, 0.5, 12), _arc(0.5, 0.67, 0.23, 0.22, 0, 1, 20)],
    7: [_line((0.2, 0.1), (0.8, 0.1), (0.42, 0.9))],
    8: [_arc(0.5, 0.29, 0.19, 0.18, 0, 1, 20), _arc(0.5, 0.69, 0.24, 0.21, 0, 1, 20)],
    9: [_arc(0.5, 0.33, 0.22, 0.21, 0, 1, 20), _line((0.72, 0.35), (0.64, 0.9))],
}


def _segments(digit):
    """The digit's strokes as segments, (S, 2 ends, 2 coordinates)."""
    return np.concatenate([np.stack([s[:-1], s[1:]], axis=1) for s in STROKES[digit]])


def _pixel_centres(size):
    """The centres of a size x size image's pixels in unit coordinates, (size*size, 2) as (x, y)."""
    return (np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2) + 0.5) / size


def _template(digit, width, size):
    """The digit drawn upright with a pen of `width` (unit box), size x size: ink fades over one
    28th of the box past the stroke's edge, as over one pixel of the final image."""
    ends = _segments(digit)
    a, ab = ends[:, 0], ends[:, 1] - ends[:, 0]
    ap = _pixel_centres(size)[:, None] - a                                 # (P, S, 2)
    t = np.clip((ap * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    distance = np.sqrt(((ap - t[..., None] * ab) ** 2).sum(-1)).min(-1)
    return np.clip(1.0 - (distance - width / 2) * 28, 0.0, 1.0).reshape(size, size)


PEN_WIDTHS = (0.04, 0.055, 0.07, 0.085)


@functools.lru_cache(maxsize=2)
def _templates(size):
    """Every digit in every pen width, (digits, widths, size, size)."""
    return np.stack([[_template(d, w, size) for w in PEN_WIDTHS] for d in range(NUM_CLASSES)])


def draw_digits(labels, rng, size=28, detail=4):
    """One image per label, (n, size, size, 1) float32 in [0, 1]: each image samples its digit's
    upright drawing (drawn once, `detail` times finer) through a random map: a rotation, a slant,
    a scale and a shift about the centre, and a smooth wobble."""
    n, fine = len(labels), size * detail
    templates = _templates(fine).reshape(-1)
    pen = rng.integers(0, len(PEN_WIDTHS), n)
    angle = rng.uniform(-0.25, 0.25, (n, 1))
    shear = rng.uniform(-0.3, 0.3, (n, 1))
    scale = rng.uniform(1.2, 1.6, (n, 2, 1))          # the drawing fills 1/scale of the image
    shift = rng.uniform(-0.1, 0.1, (n, 2, 1))
    wobble = rng.uniform(-0.04, 0.04, (n, 2, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 2, 1))
    # Where each pixel of each image reads the drawing (unit coordinates): x and y, each (n, P);
    # then x wobbles with y and y with x, by a sine of 1.5 periods across the box.
    px, py = (_pixel_centres(size).T[None] - 0.5 - shift).transpose(1, 0, 2)
    qx = (np.cos(angle) * px + (shear - np.sin(angle)) * py) * scale[:, 0] + 0.5
    qy = (np.sin(angle) * px + np.cos(angle) * py) * scale[:, 1] + 0.5
    qx, qy = (qx + wobble[:, 0] * np.sin(3 * np.pi * qy + phase[:, 0]),
              qy + wobble[:, 1] * np.sin(3 * np.pi * qx + phase[:, 1]))
    # Bilinear interpolation in the fine drawing (no ink outside it).
    qx, qy = qx * fine - 0.5, qy * fine - 0.5
    x0, y0 = np.floor(qx).astype(np.int64), np.floor(qy).astype(np.int64)
    fx, fy = qx - x0, qy - y0
    first = ((labels * len(PEN_WIDTHS) + pen) * fine * fine)[:, None]
    images = np.zeros((n, size * size))
    for x, y, weight in ((x0, y0, (1 - fx) * (1 - fy)), (x0 + 1, y0, fx * (1 - fy)),
                         (x0, y0 + 1, (1 - fx) * fy), (x0 + 1, y0 + 1, fx * fy)):
        inside = (x >= 0) & (x < fine) & (y >= 0) & (y < fine)
        ink = templates.take(first + np.clip(y, 0, fine - 1) * fine + np.clip(x, 0, fine - 1))
        images += np.where(inside, weight * ink, 0.0)
    images += rng.normal(0.0, 0.1, images.shape)
    return np.clip(images, 0.0, 1.0).astype(np.float32).reshape(n, size, size, 1)


def load_data(train_samples, test_samples, seed=0):
    """(x_train, y_train), (x_test, y_test) as keras.datasets.mnist.load_data() after the example's
    scaling and expand_dims: images (n, 28, 28, 1) float32 in [0, 1], integer labels."""
    rng = np.random.default_rng(seed)
    y_train = rng.integers(0, NUM_CLASSES, train_samples)
    y_test = rng.integers(0, NUM_CLASSES, test_samples)
    return (draw_digits(y_train, rng), y_train), (draw_digits(y_test, rng), y_test)


# ---- the example --------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default=None,
                        help="numpy (default), tensorflow, torch, jax (examples/polynn-jax) or any installed plugin")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=6000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="seed of polynn's shared random streams")
    parser.add_argument("--quiet", action="store_true", help="no summary and no progress lines")
    args = parser.parse_args(argv)

    # The data, split between train and test sets
    (x_train, y_train), (x_test, y_test) = load_data(args.train_samples, args.test_samples)
    print("x_train shape:", x_train.shape)
    print(x_train.shape[0], "train samples")
    print(x_test.shape[0], "test samples")

    # convert class vectors to binary class matrices
    y_train = np.eye(NUM_CLASSES, dtype=np.float32)[y_train]
    y_test = np.eye(NUM_CLASSES, dtype=np.float32)[y_test]

    # Build the model
    model = Sequential([
        Input(shape=INPUT_SHAPE),
        Conv2D(32, kernel_size=(3, 3), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Conv2D(64, kernel_size=(3, 3), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Flatten(),
        Dropout(0.5),
        Dense(NUM_CLASSES, activation="softmax"),
    ])
    if not args.quiet:
        model.summary()

    # Train the model
    batch_size = 128
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"],
                  backend=args.backend, dtype=args.dtype, seed=args.seed)
    model.fit(x_train, y_train, batch_size=batch_size, epochs=args.epochs, validation_split=0.1,
              verbose=0 if args.quiet else "auto")

    # Evaluate the trained model
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test loss: {loss:.4f} - test accuracy: {accuracy:.4f} (backend {model.backend}, {model.dtype})")


if __name__ == "__main__":
    main()
