"""The polynn command line: --version, backends, conformance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import polynn
from polynn.cli import main

from test_conformance import forget_wrong_backends, register_wrong_backends


@pytest.fixture(scope="module", autouse=True)
def _forget_wrong_backends_afterwards():
    yield
    forget_wrong_backends()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"polynn {polynn.__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "conformance" in capsys.readouterr().out


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def _shared_only_layers() -> list[str]:
    """polynn's layers the NumPy backend computes only through polynn.ops (no implementation of its own)."""
    from polynn import _registry
    from polynn_numpy.backend import NumpyBackend

    own = NumpyBackend.implementations.get("layer", {})
    return [cls.name for cls in _registry.builtin_specs("layer") if cls.name not in own]


def test_backends_lists_status_engine_missing_components_and_plugin_failures():
    # A backend whose engine is missing, one lacking tanh and polynn.ops, one lacking only custom
    # losses, and a plugin whose hook raises, registered at run time in a fresh interpreter;
    # tensorflow, torch and jax stay unloaded to keep this fast, and the extras' components unregistered
    # (the test backends would lack them: they implement only what NumpyBackend holds).
    completed = _run_python("""
        import sys
        from polynn import hookimpl, plugins
        from polynn.cli import main
        from polynn_numpy.backend import NumpyBackend

        def without(kind, *names):
            return {k: v for k, v in NumpyBackend.implementations[kind].items() if k not in names}

        class Thin(NumpyBackend):
            # No ops namespace: only its own implementations, so no user functions either.
            name = "thin"
            ops = None
            implementations = {**NumpyBackend.implementations, "activation": without("activation", "tanh")}

        class NoCustomLoss(NumpyBackend):
            name = "no_custom_loss"

            def shared_implementation(self, kind, name):
                return None if name == "custom_loss" else super().shared_implementation(kind, name)

        class Backends:
            @hookimpl
            def polynn_register_backends(self, register):
                register("ghost", lambda: None, engine="polynn_no_such_engine", install="ghost-engine>=1")
                register("thin", Thin, engine="numpy", install="polynn")
                register("no_custom_loss", NoCustomLoss, engine="numpy", install="polynn")

        class Broken:
            @hookimpl
            def polynn_register_backends(self, register):
                raise RuntimeError("broken on purpose")

        plugins.register_plugin(Backends(), name="test-backends-plugin")
        plugins.register_plugin(Broken(), name="broken-plugin")
        sys.exit(main(["backends"]))
    """, POLYNN_DISABLE_PLUGINS="tensorflow,torch,jax,extras")
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DISTRIBUTION", "ENGINE", "STATUS", "DTYPES", "DEVICES", "DISTRIBUTED",
                                "POLYNN.OPS"]
    numpy_line = next(line for line in lines if line.startswith("numpy "))
    import numpy as np

    assert f"polynn {polynn.__version__}" in numpy_line and f"numpy {np.__version__}" in numpy_line
    assert " ok " in numpy_line and "float32, float64" in numpy_line
    assert numpy_line.split()[-3:] == ["cpu", "data_parallel", "yes"]
    ghost = next(line for line in lines if line.startswith("ghost "))
    assert "engine not installed: pip install 'ghost-engine>=1'" in ghost
    assert "polynn_no_such_engine (not installed)" in ghost and ghost.endswith(" -")
    # The distributions come from the registration: none declared, none shown.
    assert next(line for line in lines if line.startswith("thin ")).split()[-2:] == ["-", "no"]
    assert next(line for line in lines if line.startswith("no_custom_loss ")).endswith(" partial (lacks custom_loss)")

    section = lines.index("registered components each backend lacks "
                          "(layer, activation, loss, metric, optimizer, regularizer, constraint):")
    lacks: dict[str, str] = {}
    name = ""
    for line in lines[section + 1:]:
        if line.startswith("   "):  # a long entry wraps onto indented lines
            lacks[name] += " " + line.strip()
        elif line.startswith("  "):
            name, *text = line.split()
            lacks[name] = " ".join(text)
    assert lacks["numpy"] == "none" and lacks["no_custom_loss"] == "none"
    # Without polynn.ops, thin has only NumPy's own implementations: not the layers written only on
    # polynn.ops (convolution, pooling, normalization, recurrent ...), nor tanh, which it drops.
    assert lacks["thin"] == f"layer: {', '.join(_shared_only_layers())}; activation: tanh"
    assert lacks["ghost"] == "unknown: the backend did not load"
    assert "plugin failures:" in lines
    assert any("'broken-plugin'" in line and "broken on purpose" in line for line in lines)


def test_lacking_lists_registered_components_by_kind():
    from polynn import _registry
    from polynn.cli import lacking

    from test_conformance import PartialBackend

    missing = lacking(PartialBackend())
    assert "tanh" in missing["activation"] and "rmsprop" in missing["optimizer"]
    # Without polynn.ops it lacks the layers written only on polynn.ops, every one of them.
    shared_only = _shared_only_layers()
    assert shared_only and set(shared_only) <= set(missing["layer"])
    # Beside those, only plugins' components (registered for other backends by name) are missing.
    others = [(kind, name) for kind, names in missing.items() for name in names
              if name not in ("tanh", "rmsprop", *shared_only)]
    assert all(_registry.source_of(_registry.lookup(kind, name)) != "polynn" for kind, name in others)


def test_console_script_is_installed():
    completed = subprocess.run([os.path.join(os.path.dirname(sys.executable), "polynn"), "--version"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0 and completed.stdout.strip() == f"polynn {polynn.__version__}"


def test_conformance_passes_and_writes_the_report(capsys, tmp_path):
    report = tmp_path / "numpy.json"
    plot = tmp_path / "numpy.png"
    code = main(["conformance", "numpy", "--dtype", "float32", "--case", "blog", "--case", "activation.sigmoid",
                 "--report", str(report), "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "polynn conformance: backend 'numpy' (polynn" in out and "float32: 2 pass, 0 fail" in out
    assert "activation.sigmoid" in out and "worst abs" in out
    data = json.loads(report.read_text())
    assert data["backend"]["name"] == "numpy" and data["dtype"] == "float32"
    assert [c["status"] for c in data["cases"]] == ["pass", "pass"]
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_conformance_fails_a_wrong_backend(capsys):
    register_wrong_backends()
    code = main(["conformance", "wrong_relu", "--case", "activation.relu", "--case", "activation.tanh"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "1 pass, 1 fail" in out
    assert "fail: activation.relu: gradient:" in out


def test_conformance_lists_unsupported_cases_and_strict_fails_them(capsys):
    register_wrong_backends()
    assert main(["conformance", "partial", "--case", "activation.tanh", "--case", "activation.relu"]) == 0
    out = capsys.readouterr().out
    assert "unsupported: activation.tanh: activation 'tanh' has no implementation on backend 'partial'" in out
    assert main(["conformance", "partial", "--case", "activation.tanh", "--strict"]) == 1


def test_conformance_unknown_backend(capsys):
    assert main(["conformance", "no_such_backend"]) == 2
    assert "unknown backend 'no_such_backend'" in capsys.readouterr().err


def test_conformance_plot_without_matplotlib_names_the_extra(capsys, monkeypatch, tmp_path):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["conformance", "numpy", "--case", "blog", "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install 'polynn[plot]'" in capsys.readouterr().err


def test_conformance_plot_needs_a_blog_case(capsys, tmp_path):
    code = main(["conformance", "numpy", "--case", "activation.relu", "--plot", str(tmp_path / "x.png")])
    assert code == 4  # pytest's usage error
    assert "select a blog case" in capsys.readouterr().err


def test_conformance_case_matching_nothing_is_a_usage_error(capsys):
    assert main(["conformance", "numpy", "--case", "nomatch*"]) == 2
    err = capsys.readouterr().err
    assert "polynn: error: --case 'nomatch*' matches no case." in err
    assert "list them with: pytest --pyargs polynn.conformance --collect-only -q" in err
    # one pattern matching nothing among others that match is not dropped silently
    assert main(["conformance", "numpy", "--case", "blog", "--case", "loss.mse"]) == 2
    err = capsys.readouterr().err
    assert "--case 'loss.mse' matches no case. Close case names: 'loss.mean_squared_error'" in err
    assert "'blog'" not in err


def test_conformance_report_that_cannot_be_written(capsys, tmp_path, monkeypatch):
    missing = tmp_path / "no_such_folder" / "report.json"
    assert main(["conformance", "numpy", "--case", "activation.relu", "--report", str(missing)]) == 2
    assert (f"--report {missing}: the file cannot be written: its folder {missing.parent} does not exist"
            in capsys.readouterr().err)
    assert main(["conformance", "numpy", "--case", "activation.relu", "--report", str(tmp_path)]) == 2
    assert "the file cannot be written: it is a folder" in capsys.readouterr().err

    # a write that fails after the run (disk full, say) still fails the command
    from polynn.conformance.report import Report

    def fail(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Report, "write_json", fail)
    code = main(["conformance", "numpy", "--case", "activation.relu", "--report", str(tmp_path / "r.json")])
    assert code != 0
    assert "report files not written: OSError: [Errno 28] No space left on device" in capsys.readouterr().out


@pytest.mark.parametrize("options,expected", [
    (["--polynn-backend", "nmupy", "--polynn-case", "activation.relu"],
     "ERROR: --polynn-backend nmupy: unknown backend 'nmupy'. Did you mean 'numpy'?"),
    (["--polynn-backend", "numpy", "--polynn-case", "activation.relu", "--polynn-case", "nomatch*"],
     "ERROR: --polynn-case 'nomatch*' matches no case."),
    (["--polynn-case", "activation.relu", "--polynn-report", "/no_such_folder_xyz/r.json"],
     "ERROR: --polynn-report /no_such_folder_xyz/r.json: the file cannot be written"),
], ids=["unknown-backend", "case-matching-nothing", "report-folder-missing"])
def test_the_pytest_entry_point_reports_usage_errors(tmp_path, options, expected):
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.devnull, "-p", "no:cacheprovider", "-q", "--pyargs",
         "polynn.conformance", *options], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 4, completed.stdout + completed.stderr  # pytest's usage error
    assert expected in completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr and "failed" not in completed.stdout


def test_conformance_tb_shows_the_traceback_of_an_error(capsys, tmp_path):
    register_wrong_backends()
    path = tmp_path / "report.json"
    arguments = ["conformance", "raising", "--case", "scenario.softmax_rmsprop", "--report", str(path)]
    assert main(arguments) == 1
    out = capsys.readouterr().out
    assert "raised ValueError: setting an array element with a sequence in Runtime.train_steps" in out
    assert "Traceback (most recent call last)" not in out
    # Always in the JSON report; on the terminal with --tb.
    case = json.loads(path.read_text())["cases"][0]
    assert case["status"] == "error" and "losses[0] = [1.0, 2.0]" in case["traceback"]
    assert main([*arguments, "--tb"]) == 1
    out = capsys.readouterr().out
    assert "Traceback (most recent call last)" in out and "losses[0] = [1.0, 2.0]" in out
