"""TensorFlow losses: only user functions; every built-in loss is its spec's call() on polynn.ops.

Reduction and sample weights are applied by the runtime.
"""

from __future__ import annotations

from . import custom

IMPLEMENTATIONS = {
    "custom_loss": custom.loss,
}
