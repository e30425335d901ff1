"""The kit's data-parallel part (polynn conformance --world-size N), `polynn launch`, and polynn._launch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import polynn
from polynn import plugins
from polynn._launch import first_failure, launch, tail
from polynn.cli import main
from polynn.conformance import distributed, tolerances
from polynn.errors import InvalidArgumentError

pytest.importorskip("torch", reason="the NumPy backend's data-parallel engine is torch.distributed")

CHECKS = ("data_parallel.2_processes_vs_1", "data_parallel.ranks_bitwise_equal", "data_parallel.1_process_vs_numpy",
          "data_parallel.resume_2_to_1_process")


@pytest.fixture
def backends_of_this_process(fresh_plugins):
    """Register backends in this process only (the launched processes do not have them)."""
    from polynn_numpy.backend import NumpyBackend

    def register(name, distributions, dtypes=("float32", "float64")):
        class Backend(NumpyBackend):
            pass

        Backend.name, Backend.dtypes = name, dtypes

        class Plugin:
            @polynn.hookimpl
            def polynn_register_backends(self, register):
                register(name, Backend, engine="numpy", install="polynn", dtypes=dtypes, distributions=distributions)

        fresh_plugins.register_plugin(Plugin(), f"test-{name}")

    return register


# ---- polynn conformance BACKEND --world-size N ------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_processes_of_numpy_pass_every_check(capsys, tmp_path, dtype):
    report_path = tmp_path / "report.json"
    code = main(["conformance", "numpy", "--world-size", "2", "--dtype", dtype, "--report", str(report_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(rf"{dtype}, data-parallel on 2 processes \(torch engine\): 4 pass, 0 fail, 0 error", out), out
    for check in CHECKS:
        assert re.search(rf"^{re.escape(check)}\s+pass\s+\d\.\d\de[-+]\d\d", out, re.M), out
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["world_size"] == 2 and report["distribution_engine"] == "torch"
    cases = {case["case"]: case for case in report["cases"]}
    assert list(cases) == list(CHECKS)
    vs_one = {check["name"]: check for check in cases[CHECKS[0]]["checks"]}
    assert {"history.loss", "history.val_loss", "history.accuracy", "history.auc", "step_loss_means",
            "final_weights", "iterations"} <= set(vs_one)
    expected = tolerances.DATA_PARALLEL if dtype == "float64" else tolerances.scenario(dtype)["final_weights"]
    assert vs_one["final_weights"]["tolerance"] == expected.to_json()
    against_numpy = {check["name"]: check for check in cases[CHECKS[2]]["checks"]}
    if dtype == "float64":
        assert against_numpy["final_weights"]["tolerance"] == tolerances.STRICT.to_json()
    # Every rank's weights, losses and metrics, bit for bit.
    bitwise = cases[CHECKS[1]]["checks"]
    assert {"weight.0", "history.loss", "step_loss_means"} <= {c["name"] for c in bitwise}
    assert all(c["worst_abs"] == 0 and c["tolerance"] == {"rtol": 0.0, "atol": 0.0} for c in bitwise)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend, engine", [("torch", "torch"), ("tensorflow", "tensorflow")])
def test_the_first_party_engines_pass_every_check(capsys, backend, engine, dtype):
    """The issue's bar: the kit's data-parallel part passes on every first-party backend."""
    pytest.importorskip(backend)
    code = main(["conformance", backend, "--world-size", "2", "--dtype", dtype])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(rf"{dtype}, data-parallel on 2 processes \({engine} engine\): 4 pass, 0 fail, 0 error", out), out


OWN_ENGINE = """
    from polynn import hookimpl
    from polynn_numpy.backend import NumpyBackend


    class OwnEngineBackend(NumpyBackend):
        name = "own_engine"
        distribution_engines = ("own",)

        def make_communicator(self, cluster):
            from polynn_torch.collectives import TorchCommunicator

            class Own(TorchCommunicator):
                engine = "own"

            return Own.make(cluster)


    @hookimpl
    def polynn_register_backends(register):
        register("own_engine", OwnEngineBackend, engine="numpy", install="polynn", distributions=("data_parallel",))
"""


def test_a_backend_with_an_engine_of_its_own_is_launched_on_it(capsys, monkeypatch, install_plugin):
    # An installed plugin (the launched processes find it too) whose backend trains only on the
    # communicator its make_communicator() offers: the processes ask initialize(engine="own_engine").
    root = install_plugin("polynn-own-engine", "own_engine", "polynn_own_engine", OWN_ENGINE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    assert distributed.job_engine(plugins.get_backend("own_engine")) == distributed.JobEngine(
        "torch", "own_engine", "own")
    assert main(["conformance", "own_engine", "--world-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "float64, data-parallel on 2 processes (own engine): 4 pass, 0 fail" in out, out


def test_a_backend_declaring_no_distributions_is_refused_before_any_launch(capsys, monkeypatch,
                                                                           backends_of_this_process):
    backends_of_this_process("one_process_only", ())
    monkeypatch.setattr(distributed, "launch", lambda *a, **k: pytest.fail("launched"))
    assert main(["conformance", "one_process_only", "--world-size", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "polynn: error: backend 'one_process_only' does not train data-parallel (it declares no distributions)")


def test_the_jax_example_is_refused_clearly(capsys, monkeypatch):
    """examples/polynn-jax declares no distributions: the kit and compile() both say so."""
    if "jax" not in {entry.name for entry in plugins.backend_entries()}:
        pytest.skip("the polynn-jax example is not installed")
    monkeypatch.setattr(distributed, "launch", lambda *a, **k: pytest.fail("launched"))
    assert main(["conformance", "jax", "--world-size", "2"]) == 2
    assert "backend 'jax' does not train data-parallel (it declares no distributions)" in capsys.readouterr().err
    model = polynn.Sequential([polynn.layers.Input((3,)), polynn.layers.Dense(1)])
    with pytest.raises(InvalidArgumentError, match=r"backend 'jax' does not train data-parallel .*backends that do: "
                                                   r"numpy, tensorflow, torch"):
        model.compile(loss="mse", backend="jax", distribution="data_parallel")


def test_a_dtype_the_backend_lacks_is_unsupported_and_strict_fails_it(capsys, monkeypatch, backends_of_this_process):
    backends_of_this_process("float32_only", ("data_parallel",), dtypes=("float32",))
    monkeypatch.setattr(distributed, "launch", lambda *a, **k: pytest.fail("launched"))
    assert main(["conformance", "float32_only", "--world-size", "2", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "0 pass, 0 fail, 0 error, 4 unsupported" in out
    assert f"unsupported: {CHECKS[0]}: dtype 'float64' is not supported by backend 'float32_only'" in out
    assert main(["conformance", "float32_only", "--world-size", "2", "--dtype", "float64", "--strict"]) == 1


@pytest.mark.parametrize("options", [["--world-size", "1"], ["--world-size", "2", "--case", "blog"]])
def test_usage_errors_of_the_part(capsys, monkeypatch, options):
    monkeypatch.setattr(distributed, "launch", lambda *a, **k: pytest.fail("launched"))
    assert main(["conformance", "numpy", *options]) == 2
    assert "--world-size" in capsys.readouterr().err


def test_a_rank_that_fails_is_named_with_the_end_of_its_stderr(capsys, backends_of_this_process):
    # Registered here only: the launched processes fail with UnknownBackendError, a real traceback.
    backends_of_this_process("here_only", ("data_parallel",))
    assert main(["conformance", "here_only", "--world-size", "2"]) == 1
    out = capsys.readouterr().out
    assert "0 pass, 0 fail, 4 error" in out
    message = next(line for line in out.splitlines() if line.startswith(f"error: {CHECKS[0]}: "))
    assert re.search(r"the 1-process run \(1 process, torch engine\) failed: rank 0 exited with status 1 after "
                     r"[\d.]+ s; rank 0's stderr ends with:", message), message
    quoted = out[out.index(message):].split("\n", 1)[1]
    assert "UnknownBackendError: unknown backend 'here_only'" in quoted
    assert "found in sys.modules" not in out  # runpy's warning: the kit imported the worker before running it
    assert re.search(r"the 2-process run \(2 processes, torch engine\) failed: rank [01] exited with status 1", out)
    stderr_blocks = re.findall(r"stderr ends with:\n((?:    .*\n?)+)", out)
    assert stderr_blocks and all(len(block) < distributed.STDERR_TAIL + 200 for block in stderr_blocks)


# ---- polynn launch ----------------------------------------------------------------------------------

RANK_FILES = """
    import json, os, sys
    config = json.loads(os.environ.get("TF_CONFIG", "null"))
    rank = config["task"]["index"] if config else int(os.environ["RANK"])
    size = len(config["cluster"]["worker"]) if config else int(os.environ["WORLD_SIZE"])
    address = config["cluster"]["worker"][0] if config else os.environ["MASTER_ADDR"] + ":" + os.environ["MASTER_PORT"]
    with open(os.path.join(sys.argv[1], f"rank{rank}"), "w") as f:
        f.write(f"{size} {address}")
    sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 and rank == 1 else 0)
"""


def _script(tmp_path, source=RANK_FILES):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


@pytest.mark.parametrize("engine", ["torch", "tensorflow"])
def test_launch_runs_the_script_on_every_rank(tmp_path, engine):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["launch", "--nproc-per-node", "2", "--engine", engine, _script(tmp_path), str(out)]) == 0
    written = {path.name: path.read_text().split() for path in out.iterdir()}
    assert sorted(written) == ["rank0", "rank1"]
    assert all(size == "2" and address.startswith("127.0.0.1:") for size, address in written.values())


def test_launch_exits_with_the_failed_rank_status(tmp_path, capsys):
    assert main(["launch", "--nproc-per-node", "2", _script(tmp_path), str(tmp_path), "3"]) == 3
    err = capsys.readouterr().err
    assert re.search(r"polynn launch: rank 1 exited with status 3 after [\d.]+ s", err), err
    assert "rank 0" not in err


def test_launch_stops_the_job_at_its_timeout(tmp_path, capsys):
    script = _script(tmp_path, "import time\ntime.sleep(60)\n")
    started = time.monotonic()
    assert main(["launch", "--nproc-per-node", "2", "--timeout", "1", script]) == 124
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert "rank 0 was still running" in err and "rank 1 was still running" in err and "--timeout 1 s" in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_is_passed_on_to_the_processes(tmp_path):
    script = _script(tmp_path, f"""
        import os, pathlib, time
        folder = pathlib.Path({str(tmp_path)!r})
        (folder / ("ready" + os.environ["RANK"])).touch()
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            (folder / ("interrupted" + os.environ["RANK"])).touch()
            raise
    """)
    # SIGINT's default action restored: a shell's background job would inherit it ignored.
    process = subprocess.Popen([sys.executable, "-m", "polynn.cli", "launch", "--nproc-per-node", "2", script],
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{r}").exists() for r in (0, 1)) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and "interrupted; the processes were stopped" in err
    assert (tmp_path / "interrupted0").exists() and (tmp_path / "interrupted1").exists()


def test_launch_usage_errors(tmp_path, capsys):
    assert main(["launch", "--nproc-per-node", "0", str(tmp_path / "missing.py")]) == 2
    err = capsys.readouterr().err
    assert "--nproc-per-node 0" in err and "missing.py: no such file" in err


# ---- polynn._launch ---------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for a reaper that is not polynn's counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_ranks_are_reaped_with_what_they_started_and_their_output_kept(tmp_path):
    code = textwrap.dedent(f"""
        import os, subprocess, sys, time
        rank = int(os.environ["RANK"])
        print("started", rank)
        sys.stdout.buffer.write(b"\\xff not utf-8\\n")
        if rank == 1:
            sys.exit("rank 1 gives up")
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(os.path.join({str(tmp_path)!r}, "grandchild"), "w").write(str(child.pid))
        time.sleep(60)
    """)
    finished = launch([sys.executable, "-c", code], 2, timeout=60, grace=2)
    ran, failed = finished
    assert failed.returncode == 1 and "rank 1 gives up" in failed.stderr
    assert ran.returncode is None and ran.stdout.startswith("started 0\n\ufffd not utf-8")
    assert first_failure(finished) is failed and "still running" in ran.describe()
    grandchild = int((tmp_path / "grandchild").read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_tail_bounds_a_long_text_from_a_line_start():
    text = "".join(f"line {i}\n" for i in range(1000))
    cut = tail(text, 100)
    assert len(cut) < 140 and cut.endswith("line 999\n") and cut.split("\n")[1].startswith("line ")
    assert tail("short", 100) == "short"


def test_launch_refuses_bad_arguments():
    with pytest.raises(InvalidArgumentError, match="world_size"):
        launch([sys.executable, "-c", "pass"], 0)
    with pytest.raises(InvalidArgumentError, match="engine"):
        launch([sys.executable, "-c", "pass"], 1, engine="mpi")


def test_the_environment_leaves_out_an_enclosing_job(monkeypatch):
    from polynn._launch import job_environment

    monkeypatch.setenv("POLYNN_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1")
    monkeypatch.setenv("RANK", "5")
    envs = job_environment("torch", 2)
    assert [e["RANK"] for e in envs] == ["0", "1"] and all("POLYNN_DISTRIBUTION_JOB_ADDRESSES" not in e for e in envs)
    assert os.environ["RANK"] == "5"
