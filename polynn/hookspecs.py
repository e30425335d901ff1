"""The hooks a polynn plugin may implement (pluggy project "polynn").

A plugin is a module (or object) named by an entry point in the "polynn" group; its functions
decorated with `polynn.hookimpl` and named like the hooks below are called once, when polynn first
needs a backend or component. Hooks here are never firstresult: every plugin's answer counts.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("polynn")
hookimpl = pluggy.HookimplMarker("polynn")

# The dtypes compile(dtype=...) accepts, among which register(dtypes=...) names a backend's.
DTYPES = ("float32", "float64")
# The distributions compile(distribution=...) knows, among which register(distributions=...) names a
# backend's (polynn.distribution documents them).
DISTRIBUTIONS = ("data_parallel",)
# Component kinds a backend computes (register.implementation's kind); initializers and schedules
# are computed by the core.
COMPUTED_KINDS = ("layer", "activation", "loss", "metric", "optimizer", "regularizer", "constraint")


@hookspec
def polynn_register_backends(register: Any) -> None:
    """Register backends by calling ``register`` once per backend.

    ``register(name, load, *, engine, install, dtypes=("float32", "float64"), devices=("cpu",),
    distributions=())``

    - name: the backend's name, as given to ``compile(backend=...)``;
    - load: a no-argument callable returning the `polynn.backend.Backend` instance; it is called
      only when the backend is first used, so registering must not import the engine;
    - engine (required): the import name of the engine package (for example "torch"), used to
      tell a missing engine from a broken plugin;
    - install: what to pip install to get the engine (for example "polynn[torch]"; default: engine);
    - dtypes: a tuple of the dtypes compile() accepts ("float32", "float64") that the backend runs;
    - devices: a tuple of device names (strings);
    - distributions: the distributions its runtimes train with, among DISTRIBUTIONS: declare
      ("data_parallel",) only when train_steps follows polynn.distribution.Replica's contract;
      compile(distribution=...) refuses the others before loading anything.

    Arguments outside these are refused with a PluginError naming the plugin.
    """


@hookspec
def polynn_register_components(register: Any) -> None:
    """Register new component specs, and implementations of components for backends.

    ``register(spec_class)`` adds a spec class (a frozen dataclass subclassing one of polynn's
    component bases) to the registry, so its name resolves in models and configs.
    ``register.implementation(backend, kind, name, impl)`` adds the implementation of the
    component `kind`/`name` for backend `backend`, overriding the shared one (the spec's method on
    polynn.ops); `impl` takes the form that backend's runtime calls (docs/plugins.md, section 5).
    """
