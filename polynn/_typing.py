"""Type aliases polynn's annotations share: a backend's tensor and an axis argument."""

from __future__ import annotations

from typing import Any, TypeAlias

# A tensor of whichever backend is running (a NumPy array, tf.Tensor, torch.Tensor, ...), or a
# number the running backend's ops convert: what an op takes and returns is only known at run time.
Tensor: TypeAlias = Any
# The axes a reduction runs over: one, several, or all (None).
Axis: TypeAlias = int | tuple[int, ...] | None
