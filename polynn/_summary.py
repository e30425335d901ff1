"""model.summary(): the Keras 3 table of layers, output shapes and parameter counts."""

from __future__ import annotations

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
    # A frozen layer (trainable False) has no slots, as in Keras.
    weights = sum(int(np.prod(ws.shape)) for index, ws in model._weight_specs(tuple(model.input_shape))
                  if getattr(layers[index], "trainable", True))
    floats = len(optimizer.slot_names()) * weights + _EXTRA_FLOATS.get(optimizer.name, 0)
    if not isinstance(optimizer.learning_rate, LearningRateSchedule):
        floats += 1
    return floats + 1, floats * itemsize + _ITERATION_BYTES


def summary_lines(model) -> list[str]:
    widths = (33, 24, 15)
    shape = model.input_shape
    rows = []
    frozen = 0  # the parameters of layers with trainable=False: Keras's "Non-trainable params"
    for name, layer in zip(model.layer_names(), (bound.spec for bound in model.layers)):
        if layer.name == "input":  # Keras 3 lists no row for the Input a Sequential starts with
            continue
        if shape is None:
            out, params = "?", "0 (unbuilt)"
        else:
            count = sum(int(np.prod(w.shape)) for w in layer.weight_specs(shape))
            frozen += 0 if layer.trainable else count
            params = f"{count:,}"
            shape = layer.output_shape(shape)
            out = str((None, *shape))
        rows.append((f"{name} ({type(layer).__name__})", out, params))

    def line(left, mid, right, fill):
        return left + mid.join(fill * w for w in widths) + right

    def row(cells):
        a, b, c = cells
        return f"\u2502 {a:<{widths[0] - 2}} \u2502 {b:<{widths[1] - 2}} \u2502 {c:>{widths[2] - 2}} \u2502"

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
        lines.append(row(cells))
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
