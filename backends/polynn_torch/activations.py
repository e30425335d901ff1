"""Torch activations: only user functions; every built-in activation is its spec's call() on polynn.ops."""

from __future__ import annotations

from . import custom

IMPLEMENTATIONS = {
    "custom_activation": custom.activation,
}
