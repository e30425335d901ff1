"""The JAX runtime: polynn.runtime.OpsRuntime with jax.value_and_grad, each block of steps one
jit-compiled jax.lax.scan.

Weights, optimizer slots and metric totals are the scan's carry, so a block of training steps is
one compiled program and one host transfer. Everything runs in JAX's scoped x64 mode (see
precision.py), whatever the plan's dtype.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from polynn.runtime import OpsRuntime

from .precision import x64


class JaxRuntime(OpsRuntime):
    def __init__(self, backend, plan):
        with x64():
            super().__init__(backend, plan)

    def value_and_gradients(self, objective, params):
        return jax.value_and_grad(objective, has_aux=True)(params)

    def compile_block(self, step):
        def block(constants, carry, sequences):
            return jax.lax.scan(functools.partial(step, constants), carry, sequences)

        compiled = jax.jit(block)

        def run(*args):
            with x64():
                return compiled(*args)

        return run

    def to_tensor(self, array):
        # device_put copies the host array as it is; jnp.asarray would compile a conversion per shape.
        with x64():
            return jax.device_put(np.asarray(array))
