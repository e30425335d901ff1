"""Running cases: each on the NumPy reference (once per process) and on the backend under test."""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from .. import plugins
from ..backend import Backend
from ..errors import InvalidArgumentError, UnsupportedComponentError
from . import blog, components, freezing, op_cases, recovery, scenarios, selection
from ._case import Case, CaseResult
from ._compare import compare, compare_float32
from ._harness import NUDGES, kit_seed, nudged
from .report import Report

REFERENCE = "numpy"
_reference_cache: dict[tuple[str, str, int, int], dict[str, Any] | BaseException] = {}


def all_cases(patterns: Iterable[str] = ()) -> list[Case]:
    """Every case: the blog, the scenarios, recovery, the components, the ops; with patterns (fnmatch), only the
    names matching one."""
    plugins.backend_entries()  # component plugins register their specs when plugins load
    cases = (blog.cases() + scenarios.cases() + recovery.cases() + freezing.cases() + components.cases()
             + op_cases.cases())
    return selection.matching(cases, patterns)


def _reference(case: Case, dtype: str, nudge: int = 0) -> dict[str, Any] | BaseException:
    key = (case.name, dtype, kit_seed(), nudge)
    if key not in _reference_cache:
        try:
            with nudged(nudge):
                _reference_cache[key] = case.scenario(REFERENCE, dtype)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            _reference_cache[key] = error
    return _reference_cache[key]


def _unsupported_reason(case: Case, backend: Backend, dtype: str) -> str | None:
    if dtype not in backend.dtypes:
        return f"dtype {dtype!r} is not supported by backend {backend.name!r} (it supports {', '.join(backend.dtypes)})"
    for component in case.components:
        if not backend.supports(component):
            return f"{component.kind} {component.name!r} has no implementation on backend {backend.name!r}"
    return None


# Cases that train long enough on relu units to fork in float32 (a unit dies in one run and not in
# another, by rounding alone): their float32 budget also takes the reference's nudged runs.
FORKING_KINDS = ("blog",)

# Cases that evaluate one function at given inputs, with no training steps: their float32 runs cannot
# fork, and their kinks sit where float32 puts them, so NumPy's float32 run is their reference.
POINTWISE_KINDS = ("op", "activation", "loss")


def format_traceback(error: BaseException) -> str:
    """The error's traceback as Python prints it, causes and contexts included."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def run_case(case: Case, backend_name: str, dtype: str) -> CaseResult:
    backend = plugins.get_backend(backend_name)
    reason = _unsupported_reason(case, backend, dtype)
    if reason is not None:
        return CaseResult(case.name, case.kind, "unsupported", message=reason)
    # float32 (any dtype but float64) is judged against the float64 reference, within a budget
    # that the reference's own float32 run sets (_compare.compare_float32).
    references = {(d, 0): _reference(case, d) for d in dict.fromkeys(("float64", dtype))}
    if dtype != "float64" and case.kind in FORKING_KINDS:
        references.update({(dtype, k): _reference(case, dtype, k) for k in range(1, NUDGES + 1)})
    for (d, k), reference in references.items():
        if isinstance(reference, BaseException):
            run_name = f"{d} run" if k == 0 else f"{d} run nudged by {k}"
            return CaseResult(case.name, case.kind, "error",
                              message=f"the reference's {run_name} failed: {type(reference).__name__}: {reference}",
                              traceback=format_traceback(reference))
    reference, own = cast(dict, references[("float64", 0)]), cast(dict, references[(dtype, 0)])
    nudged_runs = [cast(dict, r) for (d, k), r in references.items() if k > 0]
    try:
        observed = case.scenario(backend_name, dtype)
    except UnsupportedComponentError as error:
        return CaseResult(case.name, case.kind, "unsupported", message=str(error))
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # whatever a backend raises (sys.exit() too) is this case's failure, not the run's
        return CaseResult(case.name, case.kind, "error", message=f"{type(error).__name__}: {error}",
                          traceback=format_traceback(error))
    tolerances = case.tolerances(dtype)
    if dtype == "float64":
        checks = [compare(name, observed.get(name), expected, tolerances.get(name))
                  for name, expected in reference.items()]
    else:
        pointwise = case.kind in POINTWISE_KINDS
        checks = [compare_float32(name, observed.get(name), expected, own.get(name, expected), tolerances.get(name),
                                  pointwise=pointwise, nudged32=[r.get(name, expected) for r in nudged_runs])
                  for name, expected in reference.items()]
    status = "pass" if all(c.passed for c in checks) else "fail"
    series = {name: {"backend": np.asarray(observed[name]), "reference": np.asarray(reference[name])}
              for name in case.plotted if name in observed}
    result = CaseResult(case.name, case.kind, status, checks, series=series)
    if status == "fail":
        result.message = result.failure_text()
    return result


def run(backend: str, dtype: str = "float64", patterns: Iterable[str] = (), strict: bool = False) -> Report:
    """Run every case (or those matching `patterns`) on `backend`; returns a Report."""
    plugins.get_backend(backend)  # a backend that cannot load fails the run, naming why
    cases = all_cases()
    unmatched = selection.unmatched(patterns, cases)
    if unmatched:
        close = "".join(f" (close to {p!r}: {', '.join(map(repr, c))})"
                        for p in unmatched if (c := selection.close_names(p, cases)))
        raise InvalidArgumentError("patterns", unmatched, f"patterns each matching a case{close}; "
                                   f"{selection.accepted()}", owner="conformance.run")
    results = [run_case(case, backend, dtype) for case in selection.matching(cases, patterns)]
    return Report.create(backend, dtype, results, strict=strict)
