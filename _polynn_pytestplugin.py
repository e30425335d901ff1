"""polynn's pytest plugin: the conformance kit's options, and hooks that import polynn only once it is used.

Registered through the "pytest11" entry point, so pytest loads it in every run of an environment
where polynn is installed. It lives outside the polynn package (as Hypothesis's
_hypothesis_pytestplugin) so that loading it imports pytest and nothing else: polynn, NumPy and the
kit (polynn.conformance.session) load only when a --polynn-* option is given or the kit's tests
(`pytest --pyargs polynn.conformance`) are collected.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from polynn.conformance.session import KitSession

# The kit's session (polynn.conformance.session.KitSession), once something asked for it.
KIT = pytest.StashKey["KitSession"]()

DTYPES = ("float32", "float64")


ENTRY_POINT = "polynn"  # this plugin's name in the "pytest11" entry-point group (pyproject.toml)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # Loaded by `-p _polynn_pytestplugin` under its module name: the entry point, loaded after the
    # -p plugins, would register this module a second time, which pytest refuses.
    if pluginmanager.get_name(sys.modules[__name__]) != ENTRY_POINT and pluginmanager.get_plugin(ENTRY_POINT) is None:
        pluginmanager.set_blocked(ENTRY_POINT)
    group = parser.getgroup("polynn", "polynn conformance kit")
    group.addoption("--polynn-backend", action="append", default=[], metavar="NAME",
                    help="backend to check against the NumPy reference; repeatable, or comma-separated; "
                         "'installed' names every installed backend (default: $POLYNN_BACKEND, else numpy)")
    group.addoption("--polynn-dtype", action="append", default=[], choices=DTYPES,
                    help="dtype of every case; repeatable (default float64, the strict contract)")
    group.addoption("--polynn-case", action="append", default=[], metavar="PATTERN",
                    help="run only the cases whose name matches this fnmatch pattern (repeatable)")
    group.addoption("--polynn-report", default=None, metavar="FILE.json",
                    help="write the JSON report here; with several backends or dtypes, a path with "
                         "{backend} and {dtype} in it, one file per backend and dtype")
    group.addoption("--polynn-plot", default=None, metavar="FILE.png",
                    help="write a PNG overlaying the backend's and the reference's per-step losses "
                         "({backend} and {dtype} as for --polynn-report)")
    group.addoption("--polynn-strict", action="store_true", default=False,
                    help="count unsupported cases (and dtypes) as failures")
    group.addoption("--polynn-tb", action="store_true", default=False,
                    help="show the full traceback of an error a case raised (the JSON report always has it)")
    group.addoption("--polynn-slow", action="append", default=[], metavar="BACKEND-DTYPE",
                    help="mark the kit's tests of the runs matching this fnmatch pattern over BACKEND-DTYPE "
                         "(e.g. '*-float32', 'jax-*') 'slow', for a suite that leaves slow tests out of its "
                         "default run (-m 'not slow'); repeatable")

    # A suite's own default runs, in its pytest configuration (polynn's: pyproject.toml). A command
    # line naming backends or dtypes replaces them, and the configured slow runs with them.
    parser.addini("polynn_backends", type="args", default=[],
                  help="the kit's backends when --polynn-backend is not given (as that option takes them)")
    parser.addini("polynn_dtypes", type="args", default=[],
                  help="the kit's dtypes when --polynn-dtype is not given")
    parser.addini("polynn_slow", type="args", default=[],
                  help="as --polynn-slow, when neither --polynn-backend nor --polynn-dtype is given")


_OPTIONS = ("polynn_backend", "polynn_dtype", "polynn_case", "polynn_report", "polynn_plot", "polynn_strict",
            "polynn_slow", "polynn_tb")
_SETTINGS = ("polynn_backends", "polynn_dtypes", "polynn_slow")


def kit(config: pytest.Config) -> KitSession:
    """The kit's session of this pytest run, made (importing polynn) on first use."""
    session = config.stash.get(KIT, None)
    if session is None:
        from polynn.conformance.session import KitSession

        session = config.stash[KIT] = KitSession(config)
    return session


def pytest_configure(config: pytest.Config) -> None:
    # Options are checked (paths that cannot be written, a plot without matplotlib) before anything
    # is collected; without any, nothing of polynn is imported unless the kit's tests are collected.
    if any(config.getoption(name) for name in _OPTIONS) or any(config.getini(name) for name in _SETTINGS):
        kit(config)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    found = config.stash.get(KIT, None)
    if found is not None:
        found.check_collection(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    found = session.config.stash.get(KIT, None)
    if found is not None:
        found.finish(session)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int | pytest.ExitCode, config: pytest.Config) -> None:
    found = config.stash.get(KIT, None)
    if found is not None:
        found.summarize(terminalreporter)


@pytest.fixture
def polynn_conformance(request: pytest.FixtureRequest) -> KitSession:
    """The kit's session: which backends and dtypes the cases run on, and their results so far."""
    return kit(request.config)
