"""The conformance cases as pytest tests: one test per case, on the backend the plugin's options name."""

from __future__ import annotations

import pytest

from .plugin import _KIT


def pytest_generate_tests(metafunc):
    if "conformance_case" in metafunc.fixturenames:
        kit = metafunc.config.stash.get(_KIT, None)
        if kit is None:
            raise pytest.UsageError("polynn's pytest plugin is not active: add -p polynn.conformance.plugin")
        cases = kit.cases()
        metafunc.parametrize("conformance_case", cases, ids=[case.name for case in cases])


def test_case(conformance_case, polynn_conformance):
    result = polynn_conformance.run(conformance_case)
    if result.status == "unsupported":
        # Reported by name in the table and the JSON report; a failure under --polynn-strict.
        if polynn_conformance.strict:
            pytest.fail(f"unsupported: {result.message}", pytrace=False)
        pytest.skip(f"unsupported: {result.message}")
    if result.status != "pass":
        pytest.fail(f"{result.status}: {result.message}", pytrace=False)
