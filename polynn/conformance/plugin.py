"""The kit's pytest plugin under its former name: `-p polynn.conformance.plugin` registers _polynn_pytestplugin.

The plugin itself is the top-level module _polynn_pytestplugin (the "pytest11" entry point), which
imports nothing of polynn until the kit is used. This module stays for the command lines, and the
entry-point metadata of older installs, that name it; it registers that plugin once, whichever of
the two names pytest meets first.
"""

from __future__ import annotations

import pytest

import _polynn_pytestplugin

_ENTRY_POINT = "polynn"  # the plugin's name in the "pytest11" entry-point group (pyproject.toml)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if pluginmanager.is_registered(_polynn_pytestplugin):
        return
    # Under the entry point's name when that is free, so the entry point, met later, is not loaded
    # a second time; else (blocked with -p no:polynn, or taken by this module) under its own.
    free = not pluginmanager.is_blocked(_ENTRY_POINT) and pluginmanager.get_plugin(_ENTRY_POINT) is None
    pluginmanager.register(_polynn_pytestplugin, _ENTRY_POINT if free else _polynn_pytestplugin.__name__)
