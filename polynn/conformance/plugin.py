"""The kit's pytest plugin: options that aim the shipped tests at a backend, the table, and the report files.

Registered through the "pytest11" entry point, so it is active in every pytest run of an
environment where polynn is installed; it does nothing unless the kit's tests are collected
(`pytest --pyargs polynn.conformance --polynn-backend NAME`).
"""

from __future__ import annotations

import os

import pytest

# The functions below import polynn and the kit only when used: this plugin is loaded in every
# pytest run of an environment where polynn is installed.
_KIT = pytest.StashKey["KitSession"]()


def pytest_addoption(parser):
    group = parser.getgroup("polynn", "polynn conformance kit")
    group.addoption("--polynn-backend", default=None,
                    help="backend to check against the NumPy reference (default: $POLYNN_BACKEND, else numpy)")
    group.addoption("--polynn-dtype", default="float64", choices=("float32", "float64"),
                    help="dtype of every case (default float64, the strict contract)")
    group.addoption("--polynn-case", action="append", default=[], metavar="PATTERN",
                    help="run only the cases whose name matches this fnmatch pattern (repeatable)")
    group.addoption("--polynn-report", default=None, metavar="FILE.json", help="write the JSON report here")
    group.addoption("--polynn-plot", default=None, metavar="FILE.png",
                    help="write a PNG overlaying the backend's and the reference's per-step losses")
    group.addoption("--polynn-strict", action="store_true", default=False,
                    help="count unsupported cases as failures")


class KitSession:
    """The settings of one pytest session, and the results of the cases it ran."""

    def __init__(self, config):
        self.backend = config.getoption("polynn_backend") or os.environ.get("POLYNN_BACKEND") or "numpy"
        self.dtype = config.getoption("polynn_dtype")
        self.patterns = tuple(config.getoption("polynn_case"))
        self.report_path = config.getoption("polynn_report")
        self.plot_path = config.getoption("polynn_plot")
        self.strict = config.getoption("polynn_strict")
        self.results = []
        self.write_error: str | None = None

    def cases(self):
        from .runner import all_cases

        return all_cases(self.patterns)

    def run(self, case):
        from .runner import run_case

        result = run_case(case, self.backend, self.dtype)
        self.results.append(result)
        return result

    def report(self):
        from .report import Report

        return Report.create(self.backend, self.dtype, self.results, strict=self.strict)


def output_problems(paths) -> list[str]:
    """A message for each (option, path) whose file could not be written."""
    from .report import unwritable

    return [f"{option} {path}: the file cannot be written: {why}; accepted: a file path in an existing, "
            f"writable folder" for option, path in paths if path and (why := unwritable(path))]


def pytest_configure(config):
    kit = KitSession(config)
    problems = output_problems((("--polynn-report", kit.report_path), ("--polynn-plot", kit.plot_path)))
    if problems:
        raise pytest.UsageError("\n".join(problems))
    if kit.plot_path:
        from ..errors import PolynnError
        from .plot import require_matplotlib

        try:
            require_matplotlib()
        except PolynnError as error:
            raise pytest.UsageError(str(error)) from None
        if not any(case.plotted for case in kit.cases()):
            raise pytest.UsageError(
                f"--polynn-plot {kit.plot_path}: the cases selected by {list(kit.patterns)} have no per-step "
                f"losses to plot; select a blog case (blog, blog_dropout) or a scenario case (scenario.*) too")
    config.stash[_KIT] = kit


def pytest_collection_modifyitems(session, config, items):
    """When the kit's tests are collected: an unknown backend, or a --polynn-case pattern matching no
    case, is a usage error, not a failure (or a skip) of every case."""
    kit = config.stash.get(_KIT, None)
    if kit is None or not any("conformance_case" in getattr(item, "fixturenames", ()) for item in items):
        return
    from .. import plugins
    from ..errors import PolynnError
    from . import selection
    from .runner import all_cases

    try:
        plugins.get_backend(kit.backend)
    except PolynnError as error:
        raise pytest.UsageError(f"--polynn-backend {kit.backend}: {error}") from None
    problems = selection.problems(kit.patterns, all_cases(), option="--polynn-case")
    if problems:
        raise pytest.UsageError("\n".join(problems))


@pytest.fixture
def polynn_conformance(request) -> KitSession:
    """The kit's session: which backend and dtype the cases run on, and their results so far."""
    return request.config.stash[_KIT]


def pytest_sessionfinish(session, exitstatus):
    kit = session.config.stash.get(_KIT, None)
    if kit is None or not kit.results:
        return
    from ..errors import PolynnError
    from .plot import write_plot

    report = kit.report()
    try:
        if kit.report_path:
            report.write_json(kit.report_path)
        if kit.plot_path:
            write_plot(report, kit.plot_path)
    except (OSError, PolynnError) as error:
        kit.write_error = f"{type(error).__name__}: {error}"
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    kit = config.stash.get(_KIT, None)
    if kit is None or not kit.results:
        return
    terminalreporter.section("polynn conformance")
    for line in kit.report().table_lines():
        terminalreporter.write_line(line)
    if kit.write_error:
        terminalreporter.write_line(f"report files not written: {kit.write_error}", red=True)
        return
    for label, path in (("JSON report", kit.report_path), ("loss plot", kit.plot_path)):
        if path:
            terminalreporter.write_line(f"{label} written to {path}")
