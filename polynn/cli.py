"""The polynn command line: `polynn backends`, `polynn conformance BACKEND`, `polynn launch` and `polynn --version`."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from . import __version__, _launch, _registry, plugins
from .backend import COMPUTED_KINDS
from .errors import BackendNotInstalledError, PolynnError

if TYPE_CHECKING:
    from .backend import Backend
    from .plugins import BackendEntry

_PLUGIN_MODULE = "_polynn_pytestplugin"  # the kit's pytest plugin, a top-level module
_ENTRY_POINT = "polynn"  # the plugin's name in the "pytest11" entry-point group (pyproject.toml)


# ---- polynn backends -------------------------------------------------------------------


# The custom_* components that run user functions written with polynn.ops.
_OPS_COMPONENTS = (("activation", "custom_activation"), ("loss", "custom_loss"), ("metric", "custom_metric"))


def _load(entry: BackendEntry) -> tuple[Backend | None, str, str | None]:
    """(backend or None, status text, engine version)."""
    try:
        backend = plugins.get_backend(entry.name)
    except BackendNotInstalledError:
        return None, f"engine not installed: pip install '{entry.install}'", entry.engine_version()
    except Exception as error:  # a broken backend is listed with its error, the others still are
        return None, f"load error: {error}", entry.engine_version()
    return backend, "ok", backend.engine_version()


def _ops_support(backend: Backend | None) -> str:
    if backend is None:
        return "-"
    missing = [name for kind, name in _OPS_COMPONENTS if backend.implementation(kind, name) is None]
    if not missing:
        return "yes"
    if len(missing) == len(_OPS_COMPONENTS):
        return "no"
    return f"partial (lacks {', '.join(missing)})"


def lacking(backend: Backend) -> dict[str, list[str]]:
    """kind -> names of the registered components of that kind the backend has no implementation of,
    for each computed kind (initializers and schedules are computed by the core for every backend)."""
    plugins.load()  # component plugins register their specs when plugins load
    # Backend.supports reads the component's kind and name, which the spec class carries.
    return {kind: missing for kind in COMPUTED_KINDS
            if (missing := [cls.name for cls in _registry.specs(kind) if not backend.supports(cls)])}


def _lacking_text(backend: Backend | None) -> str:
    if backend is None:
        return "unknown: the backend did not load"
    missing = lacking(backend)
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in missing.items()) or "none"


def _print_table(rows: list[list[str]], out: IO[str]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


def cmd_backends(args: argparse.Namespace) -> int:
    # DISTRIBUTION: the package that registers the backend; DISTRIBUTED: the distributed training
    # it declares at registration (register(distributions=...)), "-" for none.
    rows = [["NAME", "DISTRIBUTION", "ENGINE", "STATUS", "DTYPES", "DEVICES", "DISTRIBUTED", "POLYNN.OPS"]]
    lacks = []
    for entry in plugins.backend_entries():
        backend, status, engine_version = _load(entry)
        engine = f"{entry.engine} {engine_version or '(not installed)'}" if entry.engine else "-"
        rows.append([entry.name, entry.distribution, engine, status, ", ".join(entry.dtypes),
                     ", ".join(entry.devices), ", ".join(entry.distributions) or "-", _ops_support(backend)])
        lacks.append((entry.name, _lacking_text(backend)))
    _print_table(rows, sys.stdout)
    print(f"\nregistered components each backend lacks ({', '.join(COMPUTED_KINDS)}):", file=sys.stdout)
    width = max(len(name) for name, _ in lacks)
    for name, text in lacks:
        lines = textwrap.wrap(text, width=max(40, 100 - width - 4), break_on_hyphens=False) or [text]
        print(f"  {name:<{width}}  {lines[0]}", file=sys.stdout)
        for line in lines[1:]:
            print(f"  {'':<{width}}  {line}", file=sys.stdout)
    failures = plugins.failures()
    if failures:
        print("\nplugin failures:", file=sys.stdout)
        for failure in failures:
            print(f"  {failure}", file=sys.stdout)
    return 0


# ---- polynn conformance ----------------------------------------------------------------


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """The pytest command line that runs the kit's tests as `args` asks."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding polynn/
    # An empty config file keeps the caller's pytest settings (addopts, testpaths) out of the kit.
    # The plugin is named explicitly and its "pytest11" entry point blocked, so it is registered
    # exactly once whether or not the entry point is visible (stale metadata, autoload disabled).
    argv = ["-c", os.devnull, "--rootdir", root, "-p", "no:cacheprovider", "-p", f"no:{_ENTRY_POINT}",
            "-p", _PLUGIN_MODULE, "-q", "--pyargs", "polynn.conformance",
            # polynn is imported before pytest starts, so pytest cannot rewrite its asserts (the
            # kit has none) and would warn about it.
            "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--polynn-backend", args.backend, "--polynn-dtype", args.dtype]
    for pattern in args.case or ():
        argv += ["--polynn-case", pattern]
    if args.report:
        argv += ["--polynn-report", args.report]
    if args.plot:
        argv += ["--polynn-plot", args.plot]
    if args.strict:
        argv.append("--polynn-strict")
    if args.tb:
        argv.append("--polynn-tb")
    return argv


def cmd_data_parallel(args: argparse.Namespace) -> int:
    """The kit's data-parallel part (--world-size N): launched here, without pytest."""
    from .conformance import distributed
    from .conformance.report import output_problems

    problems = [f"{option} is for the single-process cases, and --world-size runs the data-parallel part "
                f"instead (its four checks); accepted: one or the other"
                for option, given in (("--case", args.case), ("--plot", args.plot)) if given]
    if args.world_size < 2:
        problems.append(f"--world-size {args.world_size}: accepted: an integer >= 2 (the processes launched "
                        f"against one)")
    problems += output_problems((("--report", args.report),))
    if problems:
        for problem in problems:
            _error(problem)
        return 2
    try:
        plugins.get_backend(args.backend)  # an unknown or uninstalled backend: the message says which
        refused = distributed.refusal(args.backend)
        if refused is not None:
            return _error(refused)
        report = distributed.run_data_parallel(
            args.backend, args.dtype, args.world_size, strict=args.strict,
            progress=lambda line: print(f"polynn conformance: {line}", file=sys.stderr, flush=True))
    except PolynnError as error:
        return _error(str(error))
    for line in report.table_lines():
        print(line)
    if args.report:
        report.write_json(args.report)
        print(f"JSON report written to {args.report}")
    return 0 if report.passed else 1


def cmd_conformance(args: argparse.Namespace) -> int:
    if args.world_size is not None:
        return cmd_data_parallel(args)
    try:
        import pytest
    except ImportError:
        return _error("the conformance kit runs through pytest, which is not installed. "
                      "Install it with: pip install 'polynn[test]'")
    try:
        plugins.get_backend(args.backend)
        if args.plot:
            from .conformance.plot import require_matplotlib  # the kit loads only for this command

            require_matplotlib()
    except PolynnError as error:
        return _error(str(error))
    # the kit (its cases, pytest) loads only for this command, not for `polynn backends`
    from .conformance import selection
    from .conformance.runner import all_cases
    from .conformance.session import output_problems

    # Checked here too, so these usage errors exit 2 as every other one of the command line.
    problems = output_problems((("--report", args.report), ("--plot", args.plot)))
    problems += selection.problems(args.case or (), all_cases())
    if problems:
        for problem in problems:
            _error(problem)
        return 2
    return int(pytest.main(pytest_arguments(args)))


# ---- polynn launch ---------------------------------------------------------------------

# A day: a training script may run long; a job hung in a collective still ends.
LAUNCH_TIMEOUT = 86400.0


def cmd_launch(args: argparse.Namespace) -> int:
    problems = []
    if args.nproc_per_node < 1:
        problems.append(f"--nproc-per-node {args.nproc_per_node}: accepted: an integer >= 1")
    if not args.timeout > 0:
        problems.append(f"--timeout {args.timeout:g}: accepted: seconds, a number > 0")
    if not os.path.isfile(args.script):
        problems.append(f"{args.script}: no such file; accepted: the path of a Python script")
    if problems:
        for problem in problems:
            _error(problem)
        return 2
    try:
        finished = _launch.launch([sys.executable, args.script, *args.args], args.nproc_per_node,
                                  engine=args.engine, timeout=args.timeout, capture=False)
    except KeyboardInterrupt:  # passed on to the processes, which were given time to stop, then killed
        print("polynn launch: interrupted; the processes were stopped", file=sys.stderr)
        return 130  # as a shell reports SIGINT
    failed = _launch.first_failure(finished)
    if failed is None:
        return 0
    for f in sorted((f for f in finished if f.failed), key=lambda f: f.rank):
        print(f"polynn launch: {f.describe()}", file=sys.stderr)
    if failed.returncode is None:
        print(f"polynn launch: the job did not finish within --timeout {args.timeout:g} s", file=sys.stderr)
        return 124  # as timeout(1)
    # A process ended by a signal exits as a shell reports it: 128 + the signal's number.
    return failed.returncode if failed.returncode > 0 else 128 - failed.returncode


def _error(message: str) -> int:
    print(f"polynn: error: {message}", file=sys.stderr)
    return 2


# ---- the parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polynn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"polynn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser(
        "backends", help="list the registered backends, the components each lacks, and plugin failures")
    listing.set_defaults(handler=cmd_backends)

    kit = commands.add_parser(
        "conformance", help="check a backend against the NumPy reference",
        description="Run polynn's conformance kit on BACKEND, compared with the NumPy reference. "
                    "Exit status 0 only when every supported case passes.")
    kit.add_argument("backend", metavar="BACKEND", help="a registered backend name (see `polynn backends`)")
    kit.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                     help="float64 (default) is the strict contract; float32 allows for rounding")
    kit.add_argument("--report", metavar="FILE.json", help="write the JSON report to this file")
    kit.add_argument("--plot", metavar="FILE.png", help="write a PNG of the per-step losses (needs polynn[plot])")
    kit.add_argument("--strict", action="store_true", help="count unsupported cases as failures")
    kit.add_argument("--tb", action="store_true",
                     help="show the full traceback of an error a case raised (the JSON report always has it)")
    kit.add_argument("--case", action="append", metavar="PATTERN",
                     help="run only the cases whose name matches this fnmatch pattern (repeatable)")
    kit.add_argument("--world-size", type=int, metavar="N",
                     help="run the data-parallel part instead of the single-process cases: launch the blog model "
                          "on N >= 2 local processes (over 127.0.0.1) and on 1, and check that N give the numbers "
                          "of 1, that every rank ends equal bit for bit, that 1 gives NumPy's numbers, and that 2 "
                          "epochs on N resumed for a 3rd on 1 give 3 uninterrupted epochs; the backend must "
                          "declare distributions=('data_parallel',) when it registers")
    kit.set_defaults(handler=cmd_conformance)

    runner = commands.add_parser(
        "launch", help="run a script as N local processes of one data-parallel job",
        description="Run SCRIPT as N processes of one data-parallel job on this machine, over 127.0.0.1, "
                    "each with the launcher's environment its engine reads: torchrun's variables (RANK, "
                    "WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) for --engine torch, TF_CONFIG for "
                    "--engine tensorflow. The script calls polynn.distribution.initialize() and compiles with "
                    "distribution='data_parallel' (or 'auto'). On real clusters, torchrun is the launcher for "
                    "the torch and NumPy backends (torchrun --nproc-per-node=N script.py); this command is the "
                    "local launcher, which also sets TF_CONFIG for TensorFlow. When a process fails, the "
                    "others get 60 s to stop (polynn raises in them once a collective fails), then are "
                    "killed; Ctrl-C is passed on to them. Exit status: 0 when every process succeeded, else "
                    "the first failure's (124 when --timeout ran out, 128 + N for a process ended by signal "
                    "N, 130 after Ctrl-C).")
    runner.add_argument("--nproc-per-node", type=int, required=True, metavar="N", help="how many processes")
    runner.add_argument("--engine", choices=_launch.ENGINES, default="torch",
                        help="whose launcher environment to set: torch (torchrun's variables; the torch and "
                             "NumPy backends) or tensorflow (TF_CONFIG; the TensorFlow backend); default torch")
    runner.add_argument("--timeout", type=float, default=LAUNCH_TIMEOUT, metavar="SECONDS",
                        help=f"stop the processes still running after this many seconds (default "
                             f"{LAUNCH_TIMEOUT:g}, a day)")
    runner.add_argument("script", metavar="SCRIPT", help="the Python script every process runs")
    runner.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the script's own arguments")
    runner.set_defaults(handler=cmd_launch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
