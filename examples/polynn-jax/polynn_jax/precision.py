"""64-bit mode for the backend's own calls only, so a user's other JAX code keeps its defaults.

JAX computes in 32 bits unless jax_enable_x64 is on, and that switch is global when set with
jax.config.update. This backend instead enters JAX's scoped x64 context around everything it
traces or runs (for float32 plans too: metric sums and reported losses are float64, as on the
other backends), and the caller's setting is back on the way out.
"""

from __future__ import annotations

import jax


def x64():
    """A context in which JAX's 64-bit types are available."""
    scoped = getattr(jax, "enable_x64", None)
    if scoped is None:  # JAX releases before the top-level context manager
        from jax.experimental import enable_x64 as scoped
    return scoped(True)
