"""The kit's pytest plugin under its former name: `-p polynn.conformance.plugin` registers _polynn_pytestplugin.

The plugin itself is the top-level module _polynn_pytestplugin (the "pytest11" entry point), which
imports nothing of polynn until the kit is used. This module stays for the command lines, and the
entry-point metadata of older installs, that name it; it registers that plugin once, whichever of
the two names pytest meets first.
"""

from __future__ import annotations

import pytest

import _polynn_pytestplugin


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if pluginmanager.is_registered(_polynn_pytestplugin):
        return
    # Under the module's own name, as `-p _polynn_pytestplugin` registers it (a later -p naming it
    # then finds it registered); the module itself keeps the entry point from loading it again.
    pluginmanager.register(_polynn_pytestplugin, _polynn_pytestplugin.__name__)
