"""Outside plugins written against an earlier release keep working: polynn-jax and polynn-extras as of c35eb6d.

tests/data holds the two example plugins exactly as main had them at c35eb6d (`git archive` of
examples/polynn-jax and examples/polynn-extras), before the components were written once on
polynn.ops. They are installed unchanged into a folder of their own, which goes first on the
path of a fresh process, so their modules and entry points shadow the in-repo examples
(importlib.metadata keeps the first distribution of a name it finds on the path). Their own test
suites then run there: the JAX one runs the whole conformance kit on its backend, both dtypes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("jax")

DATA = Path(__file__).parent / "data"
RELEASE = "c35eb6d"
PLUGINS = ("polynn-jax", "polynn-extras")


# pip installs two packages and runs their suites in subprocesses: minutes, so CI only.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """(folder with the old plugins installed, folder with their unpacked sources)."""
    root = tmp_path_factory.mktemp("legacy")
    # Laid out as the repository: the JAX plugin's tests run ../../blog.py, today's blog example.
    site, sources = root / "site", root / "examples"
    sources.mkdir()
    shutil.copy(Path(__file__).parents[1] / "examples" / "blog.py", sources / "blog.py")
    for plugin in PLUGINS:
        with tarfile.open(DATA / f"{plugin}-{RELEASE}.tar.gz") as archive:
            archive.extractall(sources, filter="data")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
             "--target", str(site), str(sources / f"{plugin}-{RELEASE}")],
            capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    return site, sources


def _run(legacy, *args, timeout):
    site, _ = legacy
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=site.parent)


def test_the_old_plugins_are_the_ones_loaded(legacy):
    site, _ = legacy
    done = _run(legacy, "-c", "import polynn_jax, polynn_extras, polynn.plugins as p; "
                "print(polynn_jax.__file__); print(polynn_extras.__file__); "
                "print(p.get_backend('jax').name); print(p.failures())", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    jax_file, extras_file, name, failures = done.stdout.strip().splitlines()[-4:]
    assert Path(jax_file).is_relative_to(site) and Path(extras_file).is_relative_to(site)
    assert name == "jax"
    assert failures in ("[]", "{}", "()"), failures


# What issue 18 changed on purpose, which a plugin written to 0.1.0's formulas cannot follow:
# - Keras's float32-formed constants (gelu's, leaky_relu's slope, log_cosh's log 2, Nadam's and SGD
#   momentum's, the L1/L2 factors): the old JAX plugin implements these components itself with the
#   exact constants, so in float64 it now differs from the reference by their float32 rounding
#   (measured: 1.0e-8 absolute in weights, 3.4e-7 relative, against the kit's 1e-9); float32 passes;
# - gelu's default is the exact erf form (Keras's); the old plugin's own test trains a gelu model;
# - a custom loss may return one value per batch (Keras's semantics); its test expects the refusal.
CHANGED_BY_DESIGN = re.compile(
    r"test_case\[(activation\.gelu|activation\.leaky_relu|loss\.log_cosh|optimizer\.nadam"
    r"|optimizer\.sgd\(momentum|regularizer\.|scenario\.mse_nesterov_l2_maxnorm)[^\]]*-float64\]"
    r"|test_command_line_runs_the_kit_on_jax\[float64\]"
    r"|test_regularizers_and_constraints_float64|test_sample_weights_class_weights_and_validation_split"
    r"|test_a_custom_loss_must_give_one_value_per_sample")


def test_the_old_plugins_pass_their_own_tests_and_the_kit(legacy):
    _, sources = legacy
    suites = [str(sources / f"{plugin}-{RELEASE}" / "tests") for plugin in PLUGINS]
    # Its suite holds every kit case to "pass"; the freezing cases came after it, for a feature its
    # own runtime cannot have (frozen layers need Runtime.supports_frozen_weights): the next test
    # checks the kit reports them unsupported, never passed with the frozen layers trained.
    done = _run(legacy, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-k", "not freezing", *suites,
                timeout=3000)
    tail = (done.stdout + done.stderr)[-6000:]
    failed = [line.split("::", 1)[1].split(" - ")[0] for line in done.stdout.splitlines()
              if line.startswith("FAILED ") and "::" in line]
    assert " passed" in done.stdout, tail
    # Everything passes but what issue 18 changed on purpose: nothing else broke for them.
    assert [name for name in failed if not CHANGED_BY_DESIGN.search(name)] == [], tail
    assert done.returncode in (0, 1), tail


def test_the_old_jax_runtime_is_refused_frozen_layers(legacy):
    done = _run(legacy, "-c", "from polynn.conformance import run; "
                "report = run('jax', 'float64', patterns=('freezing.*',)); "
                "print([r.status for r in report.results], report.passed); print(report.results[0].message)",
                timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    statuses, message = done.stdout.strip().splitlines()[-2:]
    assert statuses == "['unsupported', 'unsupported'] True", done.stdout
    assert "polynn_jax.runtime.JaxRuntime does not set supports_frozen_weights" in message
