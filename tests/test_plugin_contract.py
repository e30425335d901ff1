"""Plugins that break the contract (a bad backend object, bad registration arguments, bad specs) are
refused with a PluginError naming the plugin, what was wrong, the value and what is accepted."""

from __future__ import annotations

import warnings

import pytest

from polynn import hookimpl
from polynn.errors import PluginError

from polynn_numpy.backend import NumpyBackend

DIST = "polynn-inline 1.0"


def hook_failures(plugins, hook_owner, name="inline"):
    """Register `hook_owner` as plugin `name` and return the failures its hooks caused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plugins.register_plugin(hook_owner, name, DIST)
    return [f for f in plugins.failures() if f.plugin == name]


def backends_plugin(*registrations):
    """A plugin whose backend hook calls register(*args, **kwargs) for each (args, kwargs)."""

    class Plugin:
        @hookimpl
        def polynn_register_backends(self, register):
            for args, kwargs in registrations:
                register(*args, **kwargs)

    return Plugin()


# ---- what a backend's load() returns -----------------------------------------------------


class Renamed(NumpyBackend):
    name = "something_else"


def test_load_must_return_a_backend_instance(fresh_plugins):
    hook_failures(fresh_plugins, backends_plugin(
        (("nothing", lambda: None), {"engine": "numpy"}),
        (("a_class", lambda: NumpyBackend), {"engine": "numpy"})))
    with pytest.raises(PluginError) as info:
        fresh_plugins.get_backend("nothing")
    message = str(info.value)
    assert f"backend 'nothing' from plugin 'inline' ({DIST})" in message
    assert "returned builtins.NoneType" in message and "accepted: an instance of polynn.backend.Backend" in message
    # not kept: the next use fails the same way
    with pytest.raises(PluginError, match="returned builtins.NoneType"):
        fresh_plugins.get_backend("nothing")
    with pytest.raises(PluginError, match=r"returned the class polynn_numpy\.backend\.NumpyBackend, not an instance"):
        fresh_plugins.get_backend("a_class")


def test_load_must_return_a_backend_of_the_registered_name(fresh_plugins):
    hook_failures(fresh_plugins, backends_plugin((("renamed", Renamed), {"engine": "numpy"})))
    with pytest.raises(PluginError) as info:
        fresh_plugins.get_backend("renamed")
    message = str(info.value)
    assert f"backend 'renamed' from plugin 'inline' ({DIST})" in message
    assert "named 'something_else', not 'renamed'" in message


def test_backends_lists_a_bad_backend_with_its_error_and_the_others(fresh_plugins, monkeypatch, capsys):
    from polynn.cli import main

    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", "tensorflow,torch,jax,extras")
    hook_failures(fresh_plugins, backends_plugin(
        (("nothing", lambda: None), {"engine": "numpy"}), (("renamed", Renamed), {"engine": "numpy"})))
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith(" ")}
    assert " ok " in rows["numpy"]
    assert "load error: backend 'nothing' from plugin 'inline'" in rows["nothing"]
    assert "load error: backend 'renamed'" in rows["renamed"] and "'something_else'" in rows["renamed"]
