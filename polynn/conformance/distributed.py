"""The kit's data-parallel part: a backend's N processes against its one, its one against NumPy's, a resumed run.

`polynn conformance BACKEND --world-size N` runs it: the kit launches replica_worker on this
machine over 127.0.0.1 (polynn._launch: TF_CONFIG for a backend that trains on TensorFlow's
collectives, else torchrun's variables; job_engine), at world size 1 and N, and checks that
  - N processes give the losses, metrics and final weights of one (float64: 1e-12),
  - every rank ends with the same weights, losses and metrics, bit for bit,
  - the backend's one process gives NumPy's numbers (the kit's float64 contract, STRICT),
  - 2 epochs at world size N, saved by rank 0, then loaded and trained for a 3rd epoch at world
    size 1, give the numbers of 3 uninterrupted epochs at world size 1 (float64: 1e-12).
In float32 each check uses the scenarios' float32 tolerances (tolerances.data_parallel).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence

import numpy as np

from .. import plugins
from .._launch import first_failure, launch, tail
from ..backend import Backend
from ..errors import DistributionError, InvalidArgumentError
from . import tolerances
from ._case import CaseResult
from ._compare import Check, Tolerance, compare
from .report import Report
from .runner import REFERENCE

__all__ = ["LAUNCH_TIMEOUT", "JobEngine", "check_names", "job_engine", "refusal", "run_data_parallel"]

WORKER = "polynn.conformance.replica_worker"
KIND = "data_parallel"
# Seconds each launch may take in all: many times what a TensorFlow job takes on a loaded machine.
LAUNCH_TIMEOUT = 600.0
# Characters of a failed rank's stderr that a message quotes: its end, where the traceback is.
STDERR_TAIL = 2000
# Every run trains EPOCHS epochs; the resume check's first part RESUME_AT of them at world size N.
# (Not replica_worker's defaults: importing it here would import it before `python -m` runs it.)
EPOCHS = 3
RESUME_AT = 2

Observed = dict[str, np.ndarray]


def check_names(world_size: int) -> list[str]:
    """The names of the part's checks, its rows in the report."""
    return [f"{KIND}.{world_size}_processes_vs_1", f"{KIND}.ranks_bitwise_equal", f"{KIND}.1_process_vs_numpy",
            f"{KIND}.resume_{world_size}_to_1_process"]


def refusal(backend: str) -> str | None:
    """Why `backend` cannot run the data-parallel part (from its registration), or None."""
    if "data_parallel" not in plugins.backend_distributions(backend):
        return f"backend {backend!r} does not train data-parallel (it declares no distributions)"
    return None


@dataclasses.dataclass(frozen=True)
class JobEngine:
    """How the kit starts a backend's jobs: the launcher's environment it sets (polynn._launch's
    "torch": torchrun's variables, or "tensorflow": TF_CONFIG), the engine the processes ask
    polynn.distribution.initialize() for, and the engine's name in the report."""

    launcher: str
    initialize: str
    name: str


def job_engine(backend: Backend) -> JobEngine:
    """TensorFlow's environment for a backend that trains on TensorFlow's collectives only; else
    torchrun's: torch.distributed for a backend that trains on it or on any engine (host arrays),
    and for a backend with an engine of its own, whose make_communicator() the processes ask
    (initialize(engine=<backend name>)) with the job's coordinator at 127.0.0.1."""
    engines = backend.distribution_engines
    if engines is None or "torch" in engines:
        return JobEngine("torch", "auto", "torch")
    if "tensorflow" in engines:
        return JobEngine("tensorflow", "auto", "tensorflow")
    return JobEngine("torch", backend.name, ", ".join(engines) or backend.name)


@dataclasses.dataclass
class _Run:
    """One launch of replica_worker: what each rank observed, or why the launch failed."""

    ranks: list[Observed] = dataclasses.field(default_factory=list)
    error: str = ""


def _launch_workers(what: str, out: str, backend: str, dtype: str, world_size: int, engine: JobEngine,
                    timeout: float, options: Sequence[str]) -> _Run:
    os.mkdir(out)
    argv = [sys.executable, "-m", WORKER, "--backend", backend, "--dtype", dtype, "--out", out,
            "--engine", engine.initialize, *options]
    finished = launch(argv, world_size, engine=engine.launcher, timeout=timeout)
    title = f"the {what} ({world_size} process{'es' if world_size > 1 else ''}, {engine.name} engine)"
    failed = first_failure(finished)
    if failed is not None:
        others = [f.describe() for f in finished if f.failed and f is not failed]
        also = f" (then {'; '.join(others)})" if others else ""
        limit = f" (each launch may take {timeout:g} s)" if failed.returncode is None else ""
        stderr = textwrap.indent(tail(failed.stderr.rstrip(), STDERR_TAIL), "    ") or "    (nothing)"
        return _Run(error=f"{title} failed: {failed.describe()}{limit}{also}; rank {failed.rank}'s stderr ends "
                          f"with:\n{stderr}")
    run = _Run()
    for rank in range(world_size):
        path = os.path.join(out, f"rank{rank}.npz")
        if not os.path.exists(path):
            return _Run(error=f"{title}: rank {rank} exited with status 0 but wrote no {os.path.basename(path)}")
        with np.load(path) as npz:
            run.ranks.append({key: npz[key] for key in npz.files})
    return run


def _view(observed: Observed) -> Observed:
    """The compared observations: history.*, step_loss_means, final_weights (every weight
    flattened, in order) and iterations."""
    weights = sorted((int(key.split(".", 1)[1]), value) for key, value in observed.items() if key.startswith("weight."))
    view = {key: np.asarray(value, dtype=np.float64) for key, value in observed.items()
            if key.startswith("history.") or key == "step_loss_means"}
    view["final_weights"] = np.concatenate([np.ravel(w).astype(np.float64) for _, w in weights] or [np.zeros(0)])
    view["iterations"] = np.asarray(observed["iterations"], dtype=np.float64)
    return view


def _result(name: str, checks: list[Check]) -> CaseResult:
    result = CaseResult(name, KIND, "pass" if all(c.passed for c in checks) else "fail", checks)
    if result.status == "fail":
        result.message = result.failure_text()
    return result


def _compared(name: str, observed: Observed, reference: Observed, dtype: str,
              float64: Tolerance = tolerances.DATA_PARALLEL) -> CaseResult:
    table = tolerances.data_parallel(dtype, reference, float64)
    return _result(name, [compare(key, observed.get(key), value, table[key]) for key, value in reference.items()])


def _bitwise(ranks: Sequence[Observed]) -> CaseResult:
    """Every rank's observations against rank 0's, bit for bit; the deviation is measured too."""
    checks = []
    for key, value in ranks[0].items():
        worst_abs, worst_rel, differing = 0.0, 0.0, []
        for rank, observed in enumerate(ranks[1:], start=1):
            other = observed.get(key)
            if other is None or other.dtype != value.dtype or other.tobytes() != value.tobytes():
                differing.append(rank)
            measured = compare(key, other, value, None)
            worst_abs = max(worst_abs, float("inf") if measured.worst_abs is None else measured.worst_abs)
            worst_rel = max(worst_rel, float("inf") if measured.worst_rel is None else measured.worst_rel)
        detail = f"rank{'s' if len(differing) > 1 else ''} {', '.join(map(str, differing))} differ from rank 0" \
            if differing else ""
        checks.append(Check(key, worst_abs, worst_rel, tolerances.EXACT, not differing, detail))
    return _result(f"{KIND}.ranks_bitwise_equal", checks)


def _resumed_reference(uninterrupted: Observed) -> Observed:
    """What the uninterrupted run observed in the epochs after RESUME_AT (its final weights whole)."""
    steps = len(uninterrupted["step_loss_means"]) // EPOCHS
    reference = {key: value[RESUME_AT:] for key, value in uninterrupted.items() if key.startswith("history.")}
    reference["step_loss_means"] = uninterrupted["step_loss_means"][RESUME_AT * steps:]
    reference["final_weights"] = uninterrupted["final_weights"]
    reference["iterations"] = uninterrupted["iterations"]
    return reference


def run_data_parallel(backend: str, dtype: str = "float64", world_size: int = 2, *, strict: bool = False,
                      timeout: float = LAUNCH_TIMEOUT, progress: Callable[[str], None] | None = None) -> Report:
    """Run the data-parallel part on `backend` with `world_size` processes; returns a Report with
    a row per check (check_names). A backend that declares no distributions is refused
    (DistributionError) before anything is launched; each launch may take `timeout` seconds;
    `progress` is told what is launched, as it is."""
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 2:
        raise InvalidArgumentError("world_size", world_size, "an integer >= 2", owner="conformance.run_data_parallel")
    if dtype not in ("float32", "float64"):
        raise InvalidArgumentError("dtype", dtype, "float32, float64", owner="conformance.run_data_parallel")
    loaded = plugins.get_backend(backend)  # an unknown or uninstalled backend raises here, naming why
    refused = refusal(backend)
    if refused is not None:
        raise DistributionError(refused)
    engine = job_engine(loaded)
    names = check_names(world_size)
    if dtype not in loaded.dtypes:
        reason = f"dtype {dtype!r} is not supported by backend {backend!r} (it supports {', '.join(loaded.dtypes)})"
        results = [CaseResult(name, KIND, "unsupported", message=reason) for name in names]
        return Report.create(backend, dtype, results, strict=strict, world_size=world_size,
                             distribution_engine=engine.name)

    with tempfile.TemporaryDirectory(prefix="polynn-conformance-") as folder:
        checkpoint = os.path.join(folder, "resume.polynn")
        launched: list[str] = []

        def run(what: str, size: int, *options: str, epochs: int = EPOCHS, name: str = backend,
                on: JobEngine = engine) -> _Run:
            if progress is not None:
                progress(f"launching the {what}: {size} process{'es' if size > 1 else ''}, {on.name} engine")
            launched.append(what)
            out = os.path.join(folder, f"run{len(launched)}")
            return _launch_workers(what, out, name, dtype, size, on, timeout, ("--epochs", str(epochs), *options))

        one = run("1-process run", 1)
        many = run(f"{world_size}-process run", world_size)
        # Without the 1-process run only the ranks can be compared: nothing else is launched.
        # NumPy's own run joins no engine at world size 1; torchrun's variables say so.
        reference = one if backend == REFERENCE or one.error else run(
            "NumPy reference's 1-process run", 1, name=REFERENCE, on=JobEngine("torch", "auto", "torch"))
        first = one if one.error else run("resume's first part", world_size, "--save", checkpoint, epochs=RESUME_AT)
        second = first if first.error else run("resume's second part", 1, "--load", checkpoint,
                                               "--initial-epoch", str(RESUME_AT))

    def checked(name: str, runs: Sequence[_Run], check: Callable[[], CaseResult]) -> CaseResult:
        failed = next((r for r in runs if r.error), None)
        return CaseResult(name, KIND, "error", message=failed.error) if failed else check()

    results = [
        checked(names[0], (one, many), lambda: _compared(names[0], _view(many.ranks[0]), _view(one.ranks[0]), dtype)),
        checked(names[1], (many,), lambda: _bitwise(many.ranks)),
        checked(names[2], (one, reference), lambda: _compared(
            names[2], _view(one.ranks[0]), _view(reference.ranks[0]), dtype, tolerances.STRICT)),
        checked(names[3], (one, first, second), lambda: _compared(
            names[3], _view(second.ranks[0]), _resumed_reference(_view(one.ranks[0])), dtype)),
    ]
    return Report.create(backend, dtype, results, strict=strict, world_size=world_size,
                         distribution_engine=engine.name)
