"""The conformance cases as pytest tests: one test per case, backend and dtype that the plugin's options name."""

from __future__ import annotations

import pytest

import _polynn_pytestplugin

from ._case import Case
from .session import KitSession


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" in metafunc.fixturenames:
        if metafunc.config.getoption("polynn_backend", default=None) is None:
            raise pytest.UsageError("polynn's pytest plugin is not active: add -p polynn.conformance.plugin")
        kit = _polynn_pytestplugin.kit(metafunc.config)
        metafunc.parametrize(("conformance_backend", "conformance_dtype", "conformance_case"), kit.params())


def test_case(conformance_backend: str, conformance_dtype: str, conformance_case: Case,
              polynn_conformance: KitSession) -> None:
    result = polynn_conformance.run(conformance_case, conformance_backend, conformance_dtype)
    if result.status == "unsupported":
        # Reported by name in the table and the JSON report; a failure under --polynn-strict.
        if polynn_conformance.strict:
            pytest.fail(f"unsupported: {result.message}", pytrace=False)
        pytest.skip(f"unsupported: {result.message}")
    if result.status != "pass":
        shown = f"\n{result.traceback}" if polynn_conformance.tracebacks and result.traceback else ""
        pytest.fail(f"{result.status}: {result.message}{shown}", pytrace=False)
