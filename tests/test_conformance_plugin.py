"""The kit's pytest plugin: several backends and dtypes in one session, their report files, the
'installed' backends, the slow mark, and a plugin that imports neither polynn nor NumPy until used."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

import polynn
from polynn import plugins

from test_conformance import register_wrong_backends

pytest_plugins = ["pytester"]

KIT = ("-p", "no:cacheprovider", "--pyargs", "polynn.conformance")
ROOT = pathlib.Path(polynn.__file__).resolve().parent.parent  # the folder holding polynn/ and the plugin


@pytest.fixture(autouse=True)
def _forget_test_backends_afterwards():
    yield
    # later test modules see only the installed plugins (the next use loads them again)
    plugins.reset()


def _ids(result) -> list[str]:
    return [m.group(1) for line in result.outlines if (m := re.search(r"::test_case\[(.+?)\](\s|$)", line))]


def test_several_backends_and_dtypes_in_one_session(pytester, tmp_path):
    register_wrong_backends()
    template = tmp_path / "kit-{backend}-{dtype}.json"
    result = pytester.runpytest(*KIT, "-v", "-rs", "--polynn-backend", "numpy,float32_only",
                                "--polynn-dtype", "float64", "--polynn-dtype", "float32",
                                "--polynn-case", "activation.relu", "--polynn-report", str(template))
    result.assert_outcomes(passed=3, skipped=1)
    assert _ids(result) == ["numpy-float64-activation.relu", "numpy-float32-activation.relu",
                            "float32_only-float64-activation.relu", "float32_only-float32-activation.relu"]
    # The backend's registered dtypes decide: skipped with the reason, not run.
    result.stdout.fnmatch_lines(["SKIPPED *unsupported: dtype 'float64' is not supported by backend "
                                 "'float32_only' (it supports float32)"])
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["kit-float32_only-float32.json", "kit-numpy-float32.json", "kit-numpy-float64.json"]
    for name in written:
        data = json.loads((tmp_path / name).read_text())
        backend, dtype = name[len("kit-"):-len(".json")].rsplit("-", 1)
        assert (data["backend"]["name"], data["dtype"], data["counts"]["pass"]) == (backend, dtype, 1)
    # Several runs: each one's summary line in the terminal summary.
    result.stdout.fnmatch_lines([
        "polynn conformance: backend 'numpy' *, float64: 1 pass, 0 fail, 0 error, 0 unsupported",
        "polynn conformance: backend 'numpy' *, float32: 1 pass*",
        "polynn conformance: backend 'float32_only' *, float32: 1 pass*",
        f"JSON report written to {tmp_path / 'kit-numpy-float64.json'}"])


def test_strict_fails_a_dtype_the_backend_lacks(pytester):
    register_wrong_backends()
    result = pytester.runpytest(*KIT, "--polynn-backend", "float32_only", "--polynn-case", "activation.relu",
                                "--polynn-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unsupported: dtype 'float64' is not supported by backend 'float32_only'*"])


def test_one_backend_and_dtype_keep_the_plain_case_ids(pytester):
    result = pytester.runpytest(*KIT, "--collect-only", "-q", "--polynn-case", "activation.relu",
                                "--polynn-case", "loss.hinge")
    assert _ids(result) == ["activation.relu", "loss.hinge"]


@pytest.mark.parametrize("options,expected", [
    (["--polynn-backend", "numpy,torch", "--polynn-report", "r.json"],
     "--polynn-report r.json: one file is written per backend and dtype, and this path lacks {backend}; "
     "accepted: a path with the placeholders {backend} in it"),
    (["--polynn-dtype", "float64", "--polynn-dtype", "float32", "--polynn-backend", "installed",
      "--polynn-plot", "{backend}.png"],
     "--polynn-plot {backend}.png: one file is written per backend and dtype, and this path lacks {dtype}; "
     "accepted: a path with the placeholders {backend} and {dtype} in it"),
    (["--polynn-backend", "numpy,nmupy", "--polynn-case", "activation.relu"],
     "--polynn-backend nmupy: unknown backend 'nmupy'. Did you mean 'numpy'?"),
], ids=["report-without-backend", "plot-without-dtype", "unknown-backend-among-others"])
def test_usage_errors(pytester, options, expected):
    result = pytester.runpytest(*KIT, *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(expected in line for line in result.errlines), result.errlines


def test_installed_names_the_installed_backends_not_those_registered_at_run_time(pytester):
    register_wrong_backends()  # registered by this test, not installed
    # Both dtypes, so the ids name the backend even where NumPy is the only one installed.
    result = pytester.runpytest(*KIT, "--collect-only", "-q", "--polynn-backend", "installed",
                                "--polynn-dtype", "float64", "--polynn-dtype", "float32",
                                "--polynn-case", "activation.relu")
    backends = [label.split("-float64-")[0] for label in _ids(result) if "-float64-" in label]
    assert "numpy" in backends and "wrong_relu" not in backends and "float32_only" not in backends
    for name in ("tensorflow", "torch"):
        assert (name in backends) == (importlib.util.find_spec(name) is not None), name
    assert len(backends) == len(set(backends))


def test_slow_marks_the_tests_of_the_matching_runs_slow(pytester):
    register_wrong_backends()
    result = pytester.runpytest(*KIT, "--collect-only", "-q", "--polynn-backend", "numpy,float32_only",
                                "--polynn-dtype", "float64", "--polynn-dtype", "float32",
                                "--polynn-slow", "*-float32", "--polynn-slow", "float32_only-*",
                                "--polynn-case", "loss.hinge", "-m", "not slow")
    assert _ids(result) == ["numpy-float64-loss.hinge"]
    result = pytester.runpytest(*KIT, "--collect-only", "-q", "--polynn-backend", "numpy,float32_only",
                                "--polynn-dtype", "float64", "--polynn-dtype", "float32",
                                "--polynn-slow", "*-float32", "--polynn-case", "loss.hinge", "-m", "slow")
    assert sorted(_ids(result)) == ["float32_only-float32-loss.hinge", "numpy-float32-loss.hinge"]


# ---- loading --------------------------------------------------------------------------------


def _installed_like(tmp_path) -> dict:
    """The environment of a pytest process that finds this tree's plugin through pyproject.toml's
    "pytest11" entry point, as an install made from it does (an older install's metadata, listed
    later on the path, is not used)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["pytest11"]
    info = tmp_path / "site" / "polynn-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: polynn\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(
        "[pytest11]\n" + "".join(f"{name} = {value}\n" for name, value in entry_points.items()))
    path = os.pathsep.join(p for p in (str(info.parent), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_the_plugin_imports_neither_polynn_nor_numpy_until_used(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(textwrap.dedent("""
        import sys

        def pytest_sessionfinish(session):
            loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("polynn", "numpy"))
            assert session.config.pluginmanager.get_plugin("polynn") is not None, "the plugin is not loaded"
            assert session.config.getoption("polynn_backend") == []
            assert not loaded, loaded
    """))
    (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    completed = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir",
                                str(project), str(project)], cwd=project, env=_installed_like(tmp_path),
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 passed" in completed.stdout


def test_the_former_plugin_name_still_works_with_the_entry_point(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "pytest", "-c", os.devnull, "-p", "polynn.conformance.plugin",
                                *KIT, "--polynn-case", "activation.relu"], cwd=tmp_path,
                               env=_installed_like(tmp_path), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 passed" in completed.stdout and "polynn conformance: backend 'numpy'" in completed.stdout


@pytest.mark.parametrize("loading", [["-p", "_polynn_pytestplugin"],
                                     ["-p", "polynn.conformance.plugin", "-p", "_polynn_pytestplugin"],
                                     ["-p", "_polynn_pytestplugin", "-p", "polynn.conformance.plugin"]],
                         ids=["module", "former-then-module", "module-then-former"])
def test_naming_the_plugin_module_with_p_works_beside_the_entry_point(tmp_path, loading):
    completed = subprocess.run([sys.executable, "-m", "pytest", "-c", os.devnull, *loading, *KIT,
                                "--polynn-case", "activation.relu"], cwd=tmp_path,
                               env=_installed_like(tmp_path), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 passed" in completed.stdout


# ---- a suite's configured runs ----------------------------------------------------------------


def _configured(pytester):
    pytester.makeini("""
        [pytest]
        polynn_backends = numpy float32_only
        polynn_dtypes = float64 float32
        polynn_slow = *-float32
    """)


def test_the_configured_runs_apply_without_options(pytester):
    register_wrong_backends()
    _configured(pytester)
    result = pytester.runpytest(*KIT, "--collect-only", "-q", "--polynn-case", "loss.hinge", "-m", "not slow")
    assert _ids(result) == ["numpy-float64-loss.hinge", "float32_only-float64-loss.hinge"]


def test_backends_or_dtypes_on_the_command_line_replace_the_configured_runs(pytester):
    register_wrong_backends()
    _configured(pytester)
    result = pytester.runpytest(*KIT, "--collect-only", "-q", "--polynn-case", "loss.hinge", "-m", "not slow",
                                "--polynn-backend", "numpy", "--polynn-dtype", "float32")
    # One run, so the plain case name; the configured slow runs do not apply to it.
    assert _ids(result) == ["loss.hinge"]


def test_a_configured_dtype_that_does_not_exist_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\npolynn_dtypes = float64 float16\n")
    result = pytester.runpytest(*KIT, "--collect-only", "-q")
    result.stderr.fnmatch_lines(["*polynn_dtypes: invalid dtype 'float16'; accepted: float32, float64*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_installed_finding_no_backend_is_a_usage_error(pytester, monkeypatch):
    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", "numpy,tensorflow,torch,jax,extras")
    plugins.reset()
    result = pytester.runpytest(*KIT, "--collect-only", "-q", "--polynn-backend", "installed")
    result.stderr.fnmatch_lines(["*--polynn-backend installed: no installed plugin registers a backend*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
