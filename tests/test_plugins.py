"""The plugin system against really installed plugins: fake distributions on sys.path, found
through the "polynn" entry-point group, loaded guardedly."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import polynn
from polynn import _registry, errors, hookspecs
from polynn.layers import Dense
from polynn.models import Sequential


def numpy_still_works():
    model = Sequential([Dense(2, input_dim=3), Dense(1)])
    model.compile(optimizer="sgd", loss="mse", backend="numpy", seed=0)
    history = model.fit(np.ones((8, 3)), np.zeros((8, 1)), epochs=1, verbose=0)
    return model.backend == "numpy" and np.isfinite(history.history["loss"][0])


def test_hookspecs_project_and_prefix():
    assert hookspecs.hookspec.project_name == "polynn" and hookspecs.hookimpl.project_name == "polynn"
    assert polynn.hookimpl is hookspecs.hookimpl
    hooks = [name for name in dir(hookspecs) if name.startswith("polynn_")]
    assert set(hooks) >= {"polynn_register_backends", "polynn_register_components"}


def test_first_party_backends_are_registered_by_module_name(fresh_plugins):
    entries = {e.name: e for e in fresh_plugins.backend_entries()}
    assert entries["numpy"].plugin == "numpy" and entries["numpy"].distribution.startswith("polynn ")
    assert fresh_plugins.DEFAULT_PLUGINS == ("polynn_numpy", "polynn_tensorflow", "polynn_torch")
    assert fresh_plugins.ENTRY_POINT_GROUP == "polynn"


def test_first_party_backends_need_no_entry_point_metadata(fresh_plugins, monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [])
    fresh_plugins.reset()
    entries = {e.name: e for e in fresh_plugins.backend_entries()}
    assert {"numpy", "tensorflow", "torch"} <= set(entries) and not fresh_plugins.failures()
    assert fresh_plugins.get_backend("numpy").name == "numpy"
    assert numpy_still_works()


def test_an_old_entry_point_for_a_first_party_backend_is_not_registered_twice(install_plugin):
    # What an older polynn's metadata declared: its own backends in the entry-point group.
    install_plugin("polynn-stale", "numpy_again", "polynn_numpy", "")
    names = [e.name for e in polynn.plugins.backend_entries()]
    assert names.count("numpy") == 1 and not polynn.plugins.failures()


def test_a_first_party_backend_without_its_engine_says_how_to_install_it(fresh_plugins, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    entry = {e.name: e for e in fresh_plugins.backend_entries()}["torch"]
    assert entry.plugin == "torch" and not entry.engine_installed()
    with pytest.raises(errors.BackendNotInstalledError, match=r"pip install 'polynn\[torch\]'"):
        fresh_plugins.get_backend("torch")


def test_a_plain_source_tree_finds_the_first_party_backends(tmp_path):
    # No distribution metadata at all (a checkout on PYTHONPATH, never pip-installed): the
    # entry-point group is empty, yet the backends are found.
    repo = pathlib.Path(polynn.__file__).parent.parent
    code = textwrap.dedent("""
        import importlib.metadata
        importlib.metadata.entry_points = lambda **selection: []
        from polynn import errors, plugins
        try:
            plugins.get_backend("no_such_backend")
        except errors.UnknownBackendError as error:
            print(error)
        print(sorted(e.name for e in plugins.backend_entries()), plugins.failures())
        """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "backends")])}
    env.pop("POLYNN_DISABLE_PLUGINS", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Available backends: none" not in done.stdout
    assert "numpy" in done.stdout.splitlines()[0]
    assert done.stdout.splitlines()[-1] == "['numpy', 'tensorflow', 'torch'] []"


GOOD_BACKEND = """
from polynn import hookimpl

@hookimpl
def polynn_register_backends(register):
    def load():
        from polynn_numpy.backend import NumpyBackend

        class Second(NumpyBackend):
            name = "second"

        return Second()
    register("second", load, engine="numpy", install="polynn-second")
"""


def test_an_installed_backend_plugin_is_found_and_used(install_plugin):
    install_plugin("polynn-second", "second", "polynn_second_plugin", GOOD_BACKEND)
    entry = {e.name: e for e in polynn.plugins.backend_entries()}["second"]
    assert entry.plugin == "second" and entry.distribution == "polynn-second 1.0"
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="sgd", loss="mse", backend="second", seed=1)
    assert model.backend == "second"
    reference = Sequential([Dense(1, input_dim=3)])
    reference.compile(optimizer="sgd", loss="mse", backend="numpy", seed=1)
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.predict(x, verbose=0))


def test_backend_chosen_by_environment_variable(install_plugin, monkeypatch):
    install_plugin("polynn-second", "second", "polynn_second_plugin", GOOD_BACKEND)
    monkeypatch.setenv("POLYNN_BACKEND", "second")
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="sgd", loss="mse")
    assert model.backend == "second"
    model.compile(optimizer="sgd", loss="mse", backend="numpy")  # the argument wins
    assert model.backend == "numpy"
    monkeypatch.delenv("POLYNN_BACKEND")
    model.compile(optimizer="sgd", loss="mse")
    assert model.backend == "numpy"


IMPORT_FAILS = """
raise RuntimeError("boom at import")
"""

HOOK_RAISES = """
from polynn import hookimpl

@hookimpl
def polynn_register_backends(register):
    raise ValueError("boom in hook")
"""

BAD_SIGNATURE = """
from polynn import hookimpl

@hookimpl
def polynn_register_backends(register, extra_argument):
    register("never", lambda: None)
"""

UNKNOWN_HOOK = """
from polynn import hookimpl

@hookimpl
def polynn_register_widgets(register):
    pass
"""


@pytest.mark.parametrize("source,stage,error", [
    (IMPORT_FAILS, "to import", "RuntimeError: boom at import"),
    (HOOK_RAISES, "in its polynn_register_backends hook", "ValueError: boom in hook"),
    (BAD_SIGNATURE, "validation of its hooks", "extra_argument"),
    (UNKNOWN_HOOK, "validation of its hooks", "polynn_register_widgets"),
], ids=["import", "hook-raises", "bad-signature", "unknown-hook"])
def test_a_broken_plugin_is_reported_and_the_others_keep_working(install_plugin, source, stage, error):
    install_plugin("polynn-broken", "broken", "polynn_broken_plugin", source, version="2.3")
    with pytest.warns(RuntimeWarning) as caught:
        names = [e.name for e in polynn.plugins.backend_entries()]
    assert "numpy" in names
    failures = polynn.plugins.failures()
    assert len(failures) == 1
    failure = failures[0]
    assert failure.plugin == "broken" and failure.distribution == "polynn-broken 2.3"
    message = str(failure)
    assert "'broken'" in message and "polynn-broken 2.3" in message and stage in message and error in message
    assert any(message == str(w.message) for w in caught)
    assert numpy_still_works()


@pytest.mark.parametrize("source", [IMPORT_FAILS, HOOK_RAISES, BAD_SIGNATURE], ids=["import", "hook", "signature"])
def test_strict_plugins_make_a_failure_fatal(install_plugin, monkeypatch, source):
    install_plugin("polynn-broken", "broken", "polynn_broken_plugin", source)
    monkeypatch.setenv("POLYNN_STRICT_PLUGINS", "1")
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(errors.PluginError, match=r"plugin 'broken' \(polynn-broken 1.0\) failed"):
        model.compile(optimizer="sgd", loss="mse")
    # and stays fatal: a second use does not run on a half-loaded plugin set
    with pytest.raises(errors.PluginError, match="'broken'"):
        model.compile(optimizer="sgd", loss="mse")


def test_disable_plugins_skips_the_named_ones(install_plugin, monkeypatch):
    install_plugin("polynn-broken", "broken", "polynn_broken_plugin", IMPORT_FAILS)
    install_plugin("polynn-second", "second", "polynn_second_plugin", GOOD_BACKEND)
    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", "broken, second")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = [e.name for e in polynn.plugins.backend_entries()]
    assert "second" not in names and "numpy" in names
    assert polynn.plugins.failures() == []


@pytest.mark.parametrize("listed", ["torch", "polynn_torch"])
def test_disable_plugins_skips_a_first_party_backend_by_plugin_or_module_name(fresh_plugins, monkeypatch, listed):
    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", listed)
    names = {e.name for e in fresh_plugins.backend_entries()}
    assert "torch" not in names and {"numpy", "tensorflow"} <= names


def test_disable_plugins_applies_to_a_plugin_registered_at_run_time(fresh_plugins, monkeypatch):
    class Plugin:
        @polynn.hookimpl
        def polynn_register_backends(self, register):
            register("runtime_disabled", lambda: None, engine="numpy")

    fresh_plugins.backend_entries()
    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", "inline")  # set after the installed plugins loaded
    fresh_plugins.register_plugin(Plugin(), "inline")
    assert "runtime_disabled" not in {e.name for e in fresh_plugins.backend_entries()}
    assert fresh_plugins.failures() == []
    # The variable is read at each registration: once it no longer lists the name, it registers.
    monkeypatch.delenv("POLYNN_DISABLE_PLUGINS")
    fresh_plugins.register_plugin(Plugin(), "inline")
    assert "runtime_disabled" in {e.name for e in fresh_plugins.backend_entries()}


DUPLICATE_BACKEND = """
from polynn import hookimpl

@hookimpl
def polynn_register_backends(register):
    register("numpy", lambda: None, engine="numpy")
"""


def test_a_backend_registered_twice_is_an_error_naming_both(install_plugin):
    install_plugin("polynn-copycat", "copycat", "polynn_copycat_plugin", DUPLICATE_BACKEND)
    with pytest.warns(RuntimeWarning):
        entries = {e.name: e for e in polynn.plugins.backend_entries()}
    assert entries["numpy"].plugin == "numpy"  # the first registration stands
    (failure,) = polynn.plugins.failures()
    message = str(failure.error)
    assert isinstance(failure.error, errors.PluginError)
    assert "backend 'numpy' is registered twice" in message
    assert "plugin 'numpy' (polynn 0.1.0)" in message and "plugin 'copycat' (polynn-copycat 1.0)" in message
    assert numpy_still_works()


DUPLICATE_COMPONENT = """
from typing import ClassVar
from polynn import hookimpl
from polynn.activations import Activation

@hookimpl
def polynn_register_components(register):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Snake(Activation):
        name: ClassVar[str] = "test_snake"

    @dataclasses.dataclass(frozen=True)
    class Other_{tag}(Activation):
        name: ClassVar[str] = "test_other_{tag}"

    register(Other_{tag})
    register(Snake)
"""


def test_a_component_two_plugins_register_is_an_error_naming_both(install_plugin):
    # Between two plugins neither wins: the second to load fails, and nothing of its hook is kept.
    # (A plugin's name that polynn's own component holds yields to it: tests/test_plugin_name_clash.py.)
    install_plugin("polynn-snake", "snake", "polynn_snake_plugin", DUPLICATE_COMPONENT.format(tag="snake"))
    install_plugin("polynn-copycat", "copycat", "polynn_copycat_plugin", DUPLICATE_COMPONENT.format(tag="copycat"))
    with pytest.warns(RuntimeWarning):
        polynn.plugins.backend_entries()
    (failure,) = polynn.plugins.failures()
    first = ({"snake", "copycat"} - {failure.plugin}).pop()
    message = str(failure.error)
    assert "activation 'test_snake' is registered twice" in message
    assert f"by plugin {first!r}" in message and f"by plugin {failure.plugin!r}" in message
    assert _registry.source_of(_registry.lookup("activation", "test_snake")) == f"plugin {first!r}"
    assert _registry.known("activation", f"test_other_{first}")
    assert not _registry.known("activation", f"test_other_{failure.plugin}")


SWISH_PLUGIN = """
import dataclasses
from typing import ClassVar

import numpy as np

from polynn import hookimpl
from polynn.activations import Activation


@dataclasses.dataclass(frozen=True)
class Swish2(Activation):
    name: ClassVar[str] = "swish2"
    beta: float = 1.0


def forward(spec, x):
    return x / (1 + np.exp(-spec.beta * x))


def backward(spec, x, y, dy):
    s = 1 / (1 + np.exp(-spec.beta * x))
    return dy * (s + spec.beta * x * s * (1 - s))


@hookimpl
def polynn_register_components(register):
    register(Swish2)
    register.implementation("numpy", "activation", "swish2", (forward, backward))
"""


def test_a_component_plugin_adds_a_spec_and_its_numpy_implementation(install_plugin):
    install_plugin("polynn-swish", "swish", "polynn_swish_plugin", SWISH_PLUGIN)
    layer = Dense(2, input_dim=3, activation={"class_name": "Swish2", "config": {"beta": 2.0}})
    assert layer.activation.name == "swish2" and layer.activation.beta == 2.0
    assert _registry.source_of(type(layer.activation)) == "plugin 'swish'"
    model = Sequential([layer])
    model.compile(optimizer="sgd", loss="mse", dtype="float64", seed=0)
    kernel, bias = model.get_weights()
    x = np.random.default_rng(0).normal(size=(4, 3))
    z = x @ kernel + bias
    np.testing.assert_allclose(model.predict(x, verbose=0), z / (1 + np.exp(-2 * z)), rtol=1e-14)
    model.fit(x, np.zeros((4, 2)), verbose=0)


def test_a_backend_without_a_component_names_the_ones_that_have_it(install_plugin):
    install_plugin("polynn-swish", "swish", "polynn_swish_plugin", SWISH_PLUGIN)
    install_plugin("polynn-second", "second", "polynn_second_plugin", GOOD_BACKEND)
    Sequential([Dense(1, input_dim=3, activation="swish2")]).compile(loss="mse", backend="numpy")
    model = Sequential([Dense(1, input_dim=3, activation="swish2")])
    with pytest.raises(errors.UnsupportedComponentError) as info:
        model.compile(optimizer="sgd", loss="mse", backend="second")
    message = str(info.value)
    assert "activation 'swish2' has no implementation on backend 'second'" in message
    assert "backends implementing it: numpy" in message


def test_reset_rescans_and_forgets_plugin_components(install_plugin):
    install_plugin("polynn-swish", "swish", "polynn_swish_plugin", SWISH_PLUGIN)
    polynn.plugins.backend_entries()
    assert "swish2" in _registry.names("activation")
    polynn.plugins.reset()
    # the plugin is still installed: the rescan registers it again without a clash
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Dense(1, activation="swish2")
    assert polynn.plugins.failures() == []


def test_register_plugin_at_run_time(fresh_plugins):
    class Plugin:
        @polynn.hookimpl
        def polynn_register_backends(self, register):
            register("runtime_registered", lambda: None, engine="polynn_missing_engine_xyz", install="polynn[x]")

    fresh_plugins.register_plugin(Plugin(), "inline")
    entry = {e.name: e for e in fresh_plugins.backend_entries()}["runtime_registered"]
    assert entry.plugin == "inline" and not entry.engine_installed()
    with pytest.raises(errors.BackendNotInstalledError, match=r"pip install 'polynn\[x\]'"):
        fresh_plugins.get_backend("runtime_registered")


def test_the_engine_version_comes_from_the_distribution_providing_it(fresh_plugins, monkeypatch, tmp_path):
    # an engine package provided by a distribution named unlike it (as tensorflow by tensorflow-cpu)
    (tmp_path / "polynn_fake_engine").mkdir()
    (tmp_path / "polynn_fake_engine" / "__init__.py").write_text("")
    info = tmp_path / "acme_engine_build-3.4.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-engine-build\nVersion: 3.4.1\n")
    (info / "RECORD").write_text("polynn_fake_engine/__init__.py,,\nacme_engine_build-3.4.1.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh_plugins.reset()  # the map of packages to distributions is read again

    def make(engine):
        return fresh_plugins.BackendEntry("fake", lambda: None, engine, engine, "inline", "test")

    assert make("polynn_fake_engine").engine_version() == "3.4.1"
    assert make("polynn_fake_engine.submodule").engine_version() == "3.4.1"
    assert make("polynn_no_such_engine_xyz").engine_version() is None


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["tensorflow", "torch"])
def test_the_first_party_engines_versions_are_the_installed_ones(fresh_plugins, engine):
    module = pytest.importorskip(engine)  # tensorflow comes as tensorflow-cpu where README's pins are used
    entry = {e.name: e for e in fresh_plugins.backend_entries()}[engine]
    assert entry.engine == engine and entry.engine_version() == module.__version__
