"""The kit's pytest session: which backends and dtypes its tests run on, their results, the table and report files."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
from collections.abc import Iterable
from typing import Any

import pytest

from _polynn_pytestplugin import DTYPES

from .. import plugins
from ..errors import PolynnError
from . import selection
from ._case import Case, CaseResult
from .plot import require_matplotlib, write_plot
from .report import Report, output_problems
from .runner import all_cases, run_case

INSTALLED = "installed"
PLACEHOLDERS = ("{backend}", "{dtype}")


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def output_path(template: str, backend: str, dtype: str) -> str:
    """The file of one backend and dtype: `template` with {backend} and {dtype} replaced."""
    return template.replace("{backend}", backend).replace("{dtype}", dtype)


def installed_backends() -> tuple[list[str], list[str]]:
    """(names, problems): the backends of the plugins installed (polynn's own and the "polynn" entry
    points, not plugins registered at run time) whose engine is installed; a problem per such
    plugin that failed to load, whose backends would otherwise be left out unnoticed."""
    installed = {plugins._default_plugin_name(module) for module in plugins.DEFAULT_PLUGINS}
    installed |= {ep.name for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)}
    names = [e.name for e in plugins.backend_entries() if e.plugin in installed and e.engine_installed()]
    problems = [f"--polynn-backend {INSTALLED}: {failure}; accepted: installed plugins that load (fix it, or "
                f"leave it out with POLYNN_DISABLE_PLUGINS={failure.plugin})"
                for failure in plugins.failures() if failure.plugin in installed]
    return names, problems


class KitSession:
    """The settings of one pytest session, and the results of the cases it ran, per (backend, dtype)."""

    def __init__(self, config: pytest.Config) -> None:
        # The command line first; else the suite's configuration (ini keys polynn_backends, ...).
        given_backends, given_dtypes = config.getoption("polynn_backend"), config.getoption("polynn_dtype")
        named = [name.strip() for value in given_backends or config.getini("polynn_backends")
                 for name in value.split(",")]
        self.backend_names = _unique(name for name in named if name) or [
            os.environ.get("POLYNN_BACKEND") or "numpy"]
        self.dtypes = _unique(given_dtypes or config.getini("polynn_dtypes")) or ["float64"]
        unknown = [dtype for dtype in self.dtypes if dtype not in DTYPES]
        if unknown:
            raise pytest.UsageError(f"polynn_dtypes: invalid dtype {unknown[0]!r:.80}; accepted: "
                                    f"{', '.join(DTYPES)}")
        configured_slow = [] if given_backends or given_dtypes else config.getini("polynn_slow")
        self.slow_runs = tuple(config.getoption("polynn_slow") or configured_slow)
        self.patterns = tuple(config.getoption("polynn_case"))
        self.report_path = config.getoption("polynn_report")
        self.plot_path = config.getoption("polynn_plot")
        self.strict = config.getoption("polynn_strict")
        self.tracebacks = config.getoption("polynn_tb")
        self.verbose = config.getoption("verbose") > 0
        self.results: dict[tuple[str, str], list] = {}
        self.write_error: str | None = None
        self._runs: list[tuple[str, str]] | None = None
        self._problems: list[str] = []
        self._cases: list[Case] | None = None
        self._reports: list[Report] | None = None
        self._check_options()
        if self.slow_runs:
            config.addinivalue_line("markers", "slow: a slow test, left out by -m 'not slow'")

    # ---- what runs -----------------------------------------------------------------------

    def _check_options(self) -> None:
        several = {"{backend}": len(self.backend_names) > 1 or INSTALLED in self.backend_names,
                   "{dtype}": len(self.dtypes) > 1}
        problems = []
        for option, path in (("--polynn-report", self.report_path), ("--polynn-plot", self.plot_path)):
            missing = [p for p, needed in several.items() if needed and path and p not in path]
            if missing:
                problems.append(
                    f"{option} {path}: one file is written per backend and dtype, and this path "
                    f"lacks {' and '.join(missing)}; accepted: a path with the placeholders "
                    f"{' and '.join(p for p, needed in several.items() if needed)} in it, "
                    f"e.g. kit-{{backend}}-{{dtype}}{os.path.splitext(path)[1]}")
        if not problems and (self.report_path or self.plot_path):
            # Every file's folder is checked now ('installed' resolved), not after the cases ran.
            paths = [(option, output_path(path, backend, dtype) if path else None) for option, path in
                     (("--polynn-report", self.report_path), ("--polynn-plot", self.plot_path))
                     for backend, dtype in self.runs()]
            problems = _unique(output_problems(paths))
        if problems:
            raise pytest.UsageError("\n".join(problems))
        if self.plot_path:
            try:
                require_matplotlib()
            except PolynnError as error:
                raise pytest.UsageError(str(error)) from None
            if not any(case.plotted for case in self.cases()):
                raise pytest.UsageError(
                    f"--polynn-plot {self.plot_path}: the cases selected by {list(self.patterns)} have no per-step "
                    f"losses to plot; select a blog case (blog, blog_dropout) or a scenario case (scenario.*) too")

    def cases(self) -> list[Case]:
        if self._cases is None:
            self._cases = all_cases(self.patterns)
        return self._cases

    def runs(self) -> list[tuple[str, str]]:
        """(backend, dtype) of every run, 'installed' resolved on first use (at collection)."""
        if self._runs is None:
            backends = []
            for name in self.backend_names:
                if name == INSTALLED:
                    names, problems = installed_backends()
                    backends += names
                    self._problems += problems
                    if not names and not problems:
                        self._problems.append(
                            f"--polynn-backend {INSTALLED}: no installed plugin registers a backend whose "
                            f"engine is installed (POLYNN_DISABLE_PLUGINS="
                            f"{os.environ.get('POLYNN_DISABLE_PLUGINS', '')!r:.80}); accepted: an environment "
                            f"where at least one does, or backends named one by one")
                else:
                    backends.append(name)
            self._runs = [(backend, dtype) for backend in _unique(backends) for dtype in self.dtypes]
        return self._runs

    def params(self) -> list[Any]:
        """One pytest.param (backend, dtype, case) per test, with its id and marks."""
        runs = self.runs()
        entries = {e.name: e for e in plugins.backend_entries()}
        params = []
        for backend, dtype in runs:
            slow = any(fnmatch.fnmatchcase(f"{backend}-{dtype}", pattern) for pattern in self.slow_runs)
            marks = [pytest.mark.slow] if slow else []
            entry = entries.get(backend)
            # Under --polynn-strict the cases run, and fail as unsupported, as every unsupported case.
            if entry is not None and dtype not in entry.dtypes and not self.strict:
                marks.append(pytest.mark.skip(reason=f"unsupported: dtype {dtype!r} is not supported by backend "
                                                     f"{backend!r} (it supports {', '.join(entry.dtypes)})"))
            for case in self.cases():
                # One run keeps the plain case names as ids, so -k selections written for them still work.
                label = case.name if len(runs) == 1 else f"{backend}-{dtype}-{case.name}"
                params.append(pytest.param(backend, dtype, case, id=label, marks=marks))
        return params

    def check_collection(self, items: list[pytest.Item]) -> None:
        """When the kit's tests are collected: an unknown backend, a failed installed plugin, or a
        --polynn-case pattern matching no case, is a usage error, not a failure (or a skip) of every case."""
        if not any("conformance_case" in getattr(item, "fixturenames", ()) for item in items):
            return
        problems = list(self._problems)
        for name in self.backend_names:
            if name != INSTALLED:
                try:
                    plugins.get_backend(name)
                except PolynnError as error:
                    problems.append(f"--polynn-backend {name}: {error}")
        problems += selection.problems(self.patterns, all_cases(), option="--polynn-case")
        if problems:
            raise pytest.UsageError("\n".join(problems))

    # ---- running and reporting --------------------------------------------------------

    def run(self, case: Case, backend: str, dtype: str) -> CaseResult:
        result = run_case(case, backend, dtype)
        self.results.setdefault((backend, dtype), []).append(result)
        return result

    def reports(self) -> list[Report]:
        """A Report per (backend, dtype) that ran cases, made once the session is over."""
        if self._reports is None:
            self._reports = [Report.create(backend, dtype, self.results[backend, dtype], strict=self.strict)
                             for backend, dtype in self.runs() if (backend, dtype) in self.results]
        return self._reports

    def finish(self, session: pytest.Session) -> None:
        if not self.results:
            return
        try:
            for report in self.reports():
                backend, dtype = report.backend.name, report.dtype
                if self.report_path:
                    report.write_json(output_path(self.report_path, backend, dtype))
                if self.plot_path:
                    write_plot(report, output_path(self.plot_path, backend, dtype))
        except (OSError, PolynnError) as error:
            self.write_error = f"{type(error).__name__}: {error}"
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def summarize(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        terminalreporter.section("polynn conformance")
        reports = self.reports()
        # One run shows every case's row; several show each run's summary line and the cases that
        # did not pass (every row with -v), so a suite running the kit on each engine stays readable.
        full = len(reports) == 1 or self.verbose
        for report in reports:
            for line in report.table_lines() if full else [report.summary(), *report.problem_lines()]:
                terminalreporter.write_line(line)
        if self.write_error:
            terminalreporter.write_line(f"report files not written: {self.write_error}", red=True)
            return
        for label, template in (("JSON report", self.report_path), ("loss plot", self.plot_path)):
            if template:
                for report in reports:
                    terminalreporter.write_line(
                        f"{label} written to {output_path(template, report.backend.name, report.dtype)}")
