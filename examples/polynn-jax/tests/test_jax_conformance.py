"""polynn's conformance kit on the JAX backend, in float64 (the strict contract) and float32.

Each case runs as its own test, so a failure names its case and its deviations. The first-party
components must all be supported; components that other installed plugins add may be
unsupported (reported, never a failure), as the kit itself treats them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("jax")

from polynn.conformance import all_cases, run_case  # noqa: E402

CASES = all_cases()


def _first_party(case) -> bool:
    return all(type(c).__module__.split(".")[0] == "polynn" for c in case.components)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case, dtype):
    result = run_case(case, "jax", dtype)
    if result.status == "unsupported" and not _first_party(case):
        pytest.skip(f"a plugin's component: {result.message}")
    assert result.status == "pass", f"{result.status}: {result.message}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_command_line_runs_the_kit_on_jax(dtype):
    """`polynn conformance jax` finds the backend through its entry point, in a fresh process."""
    done = subprocess.run([sys.executable, "-m", "polynn.cli", "conformance", "jax", "--dtype", dtype,
                           "--case", "optimizer.sgd(momentum=0.9*"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backend 'jax' (polynn-jax 0.1.0), engine jax" in done.stdout
    assert f"{dtype}: 2 pass, 0 fail, 0 error, 0 unsupported" in done.stdout
