"""polynn's conformance kit on the JAX backend.

Every case runs on JAX in both dtypes as the kit's own tests: `--polynn-backend installed` (the
repository's pytest settings) includes this backend once it is installed, or
`pytest --pyargs polynn.conformance --polynn-backend jax --polynn-dtype float64 --polynn-dtype float32`.
There, a case whose component JAX lacks is skipped, as for any backend; here, polynn's own
components must all be supported, in both dtypes, so that none of their cases is ever skipped.
Components that other installed plugins add may be unsupported (reported, never a failure).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("jax")

from polynn import _registry, plugins  # noqa: E402
from polynn.backend import COMPUTED_KINDS  # noqa: E402


def test_jax_supports_every_first_party_component_in_both_dtypes():
    backend = plugins.get_backend("jax")
    assert set(backend.dtypes) >= {"float32", "float64"}
    entry = next(e for e in plugins.backend_entries() if e.name == "jax")
    assert set(entry.dtypes) >= {"float32", "float64"}
    plugins.load()  # component plugins register their specs when plugins load
    first_party = [cls for kind in COMPUTED_KINDS for cls in _registry.specs(kind)
                   if cls.__module__.split(".")[0] == "polynn"]
    assert len(first_party) > 50
    assert [f"{cls.kind}.{cls.name}" for cls in first_party if not backend.supports(cls)] == []


@pytest.mark.slow  # a process of its own, importing JAX
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_command_line_runs_the_kit_on_jax(dtype):
    """`polynn conformance jax` finds the backend through its entry point, in a fresh process."""
    done = subprocess.run([sys.executable, "-m", "polynn.cli", "conformance", "jax", "--dtype", dtype,
                           "--case", "optimizer.sgd(momentum=0.9*"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backend 'jax' (polynn-jax 0.1.0), engine jax" in done.stdout
    assert f"{dtype}: 2 pass, 0 fail, 0 error, 0 unsupported" in done.stdout
