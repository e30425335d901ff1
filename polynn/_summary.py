"""model.summary(): the Keras 3 table of layers, output shapes and parameter counts."""

from __future__ import annotations

import itertools

import numpy as np

from .schedules import LearningRateSchedule

# Keras's optimizer variables beyond one slot per weight, as its summary counts them: the
# iteration count (int64), the rate unless a schedule sets it, and for Nadam u_product, the
# running product of its momentum schedule (polynn computes that product from the step count).
_ITERATION_BYTES = 8
_EXTRA_FLOATS = {"nadam": 1}


def _readable(size: float) -> str:
    """Keras's readable_memory_size."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters, as rich wraps a table cell: words filled
    greedily, one longer than a line cut into pieces."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        joined = f"{line} {word}" if line else word
        if len(joined) <= width:
            line = joined
            continue
        if line:
            lines.append(line)
        while len(word) > width:
            lines.append(word[:width])
            word = word[width:]
        line = word
    lines.append(line)
    return lines


def _bytes(count: int, itemsize: int) -> str:
    return _readable(float(count * itemsize))


def optimizer_params(model) -> tuple[int, int] | None:
    """(count, bytes) of the optimizer's variables as Keras's summary reports them once the
    optimizer is built, which for polynn is once it has made an update (model.iterations > 0;
    a new compile() starts over, as a new Keras optimizer): its slots (slot_names()) for each
    trainable weight, the iteration count, the rate when it is a number, and Nadam's u_product.
    None before that."""
    if not model.compiled or model.iterations == 0 or model.input_shape is None:
        return None
    optimizer = model.optimizer.spec
    itemsize = np.dtype(model.dtype).itemsize
    layers = model.layers
    # A frozen layer (trainable False) and a non-trainable weight (moving statistics) have no
    # slots, as in Keras.
    weights = sum(int(np.prod(ws.shape)) for index, ws in model._weight_specs(tuple(model.input_shape))
                  if getattr(layers[index], "trainable", True) and ws.trainable)
    floats = len(optimizer.slot_names()) * weights + _EXTRA_FLOATS.get(optimizer.name, 0)
    if not isinstance(optimizer.learning_rate, LearningRateSchedule):
        floats += 1
    return floats + 1, floats * itemsize + _ITERATION_BYTES


def summary_lines(model) -> list[str]:
    widths = (33, 24, 15)
    shape = model.input_shape
    rows = []
    # Keras's "Non-trainable params": those of layers with trainable=False, and the non-trainable
    # weights (moving statistics) of the others.
    frozen = 0
    for name, layer in zip(model.layer_names(), (bound.spec for bound in model.layers)):
        if layer.name == "input":  # Keras 3 lists no row for the Input a Sequential starts with
            continue
        if shape is None:
            out, params = "?", "0 (unbuilt)"
        else:
            specs = layer.weight_specs(shape)
            count = sum(int(np.prod(w.shape)) for w in specs)
            frozen += sum(int(np.prod(w.shape)) for w in specs if not (layer.trainable and w.trainable))
            params = f"{count:,}"
            shape = layer.output_shape(shape)
            out = str((None, *shape))
        rows.append((f"{name} ({type(layer).__name__})", out, params))

    def line(left, mid, right, fill):
        return left + mid.join(fill * w for w in widths) + right

    def row(cells):
        # A cell longer than its column wraps onto more lines, as Keras's (rich's) table wraps it.
        a, b, c = (_wrap(cell, width - 2) for cell, width in zip(cells, widths))
        return "\n".join(
            f"\u2502 {x:<{widths[0] - 2}} \u2502 {y:<{widths[1] - 2}} \u2502 {z:>{widths[2] - 2}} \u2502"
            for x, y, z in itertools.zip_longest(a, b, c, fillvalue=""))

    params = model.count_params()
    itemsize = np.dtype(model.dtype or "float32").itemsize
    optimizer = optimizer_params(model)
    extra_count, extra_bytes = optimizer or (0, 0)
    lines = [f'Model: "{model.name}"',
             line("\u250f", "\u2533", "\u2513", "\u2501"),
             "\u2503 " + f"{'Layer (type)':<{widths[0] - 2}} \u2503 {'Output Shape':<{widths[1] - 2}} \u2503 "
             f"{'Param #':>{widths[2] - 2}} \u2503",
             line("\u2521", "\u2547", "\u2529", "\u2501")]
    for k, cells in enumerate(rows):
        lines.extend(row(cells).split("\n"))
        if k != len(rows) - 1:
            lines.append(line("\u251c", "\u253c", "\u2524", "\u2500"))
    lines.append(line("\u2514", "\u2534", "\u2518", "\u2500"))
    # As Keras, the total counts the optimizer's variables too once it has them.
    lines.append(f" Total params: {params + extra_count:,} ({_readable(params * itemsize + extra_bytes)})")
    lines.append(f" Trainable params: {params - frozen:,} ({_bytes(params - frozen, itemsize)})")
    lines.append(f" Non-trainable params: {frozen:,} ({_bytes(frozen, itemsize)})")
    if optimizer is not None:
        lines.append(f" Optimizer params: {extra_count:,} ({_readable(extra_bytes)})")
    return lines
