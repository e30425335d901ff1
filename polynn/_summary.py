"""model.summary(): the Keras 3 table of layers, output shapes and parameter counts."""

from __future__ import annotations

import numpy as np


def _bytes(count: int, itemsize: int) -> str:
    size = float(count * itemsize)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


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

    total = model.count_params()
    itemsize = np.dtype(model.dtype or "float32").itemsize
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
    lines.append(f" Total params: {total:,} ({_bytes(total, itemsize)})")
    lines.append(f" Trainable params: {total - frozen:,} ({_bytes(total - frozen, itemsize)})")
    lines.append(f" Non-trainable params: {frozen:,} ({_bytes(frozen, itemsize)})")
    return lines
