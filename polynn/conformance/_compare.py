"""How far a backend's observation is from the reference's, and whether that is within tolerance.

A float32 run is judged against the float64 reference, within the observation's float32 tolerance
plus REFERENCE_DEVIATION_FACTOR times the NumPy reference's own float32 deviation from float64 on the
same case (compare_float32): rounding alone moves a correct float32 run that far, and where float32
training forks from float64 (a relu unit dies in one run and not the other) the reference's own
deviation says so and widens the budget for that case and seed only (docs/plugins.md, "float32").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """An element passes when |actual - reference| <= atol + rtol * |reference| (numpy.isclose)."""

    rtol: float
    atol: float

    def to_json(self) -> dict[str, Any]:
        return {"rtol": self.rtol, "atol": self.atol}


@dataclasses.dataclass(frozen=True)
class Check:
    """One observation compared: its worst deviations and, when checked, its tolerance and verdict.

    worst_rel is taken over the elements whose reference is non-zero; a deviation where the
    reference is exactly zero shows in worst_abs. tolerance None means measured, not checked.
    """

    name: str
    worst_abs: float | None
    worst_rel: float | None
    tolerance: Tolerance | None
    passed: bool
    detail: str = ""
    # float32 runs: which reference the observation was compared with, and (against float64) the
    # NumPy reference's own float32 deviation from it, part of the tolerance's atol.
    compared_with: str | None = None
    reference_deviation: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checked": self.tolerance is not None,
            "passed": self.passed,
            "worst_abs": finite_or_none(self.worst_abs),
            "worst_rel": finite_or_none(self.worst_rel),
            "tolerance": None if self.tolerance is None else self.tolerance.to_json(),
            "detail": self.detail,
            **({} if self.compared_with is None else {"compared_with": self.compared_with}),
            **({} if self.reference_deviation is None
               else {"reference_float32_deviation": finite_or_none(self.reference_deviation)}),
        }


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def compare(name: str, actual: Any, reference: Any, tolerance: Tolerance | None) -> Check:
    if actual is None:
        return Check(name, None, None, tolerance, False, "the backend produced no value")
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return Check(name, None, None, tolerance, False, f"shape {a.shape}; the reference has shape {r.shape}")
    if a.size == 0:
        return Check(name, 0.0, 0.0, tolerance, True)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - r)
    # Equal infinities and NaN against NaN agree; NaN against a number is the worst deviation.
    agree = (a == r) | (np.isnan(a) & np.isnan(r))
    diff = np.where(agree, 0.0, np.where(np.isnan(diff), np.inf, diff))
    # Relative terms use finite references only; NaN and infinite ones must match exactly (agree).
    scale = np.where(np.isfinite(r), np.abs(r), 0.0)
    nonzero = scale > 0
    worst_abs = float(diff.max())
    worst_rel = float(np.max(diff[nonzero] / scale[nonzero])) if nonzero.any() else 0.0
    passed = True
    detail = ""
    if tolerance is not None:
        bad = ~(agree | (diff <= tolerance.atol + tolerance.rtol * scale))
        passed = not bad.any()
        if not passed:
            first = np.unravel_index(int(np.argmax(bad)), bad.shape)
            detail = (f"{int(bad.sum())} of {bad.size} values out of tolerance; first at index "
                      f"{tuple(int(i) for i in first)}: {a[first]!r} vs reference {r[first]!r}")
    return Check(name, worst_abs, worst_rel, tolerance, passed, detail)


# The budget's multiple of the reference's own float32 deviation: at least 1, so that a backend within
# tolerance of the float32 reference is within budget of the float64 one (|b - r64| <= |b - r32| +
# |r32 - r64|). Another engine's rounding can be amplified more than the reference's (centered
# RMSprop), and an injected error of 1e-3 needs hundreds of times it: docs/performance.md, "float32 verdict".
REFERENCE_DEVIATION_FACTOR = 8.0

# A float32 tolerance this tight is a bitwise or float64-precision contract (values a backend only
# stores, statistics computed in float64 from them): those observations keep the float32 reference.
_STORED = 1e-9


def reference_deviation(reference32: Any, reference64: Any) -> float:
    """The worst absolute deviation of the reference's float32 observation from its float64 one; 0
    when they cannot be compared (other shapes, a non-finite difference): no allowance then."""
    r32 = np.asarray(reference32, dtype=np.float64)
    r64 = np.asarray(reference64, dtype=np.float64)
    if r32.shape != r64.shape or r32.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(r32 - r64)
    diff = np.where((r32 == r64) | (np.isnan(r32) & np.isnan(r64)), 0.0, diff)
    worst = float(diff.max())
    return worst if np.isfinite(worst) else 0.0


def compare_float32(name: str, actual: Any, reference64: Any, reference32: Any,
                    tolerance: Tolerance | None, *, pointwise: bool = False,
                    nudged32: Sequence[Any] = ()) -> Check:
    """A float32 observation against the float64 reference, its atol widened by the reference's own
    float32 deviation times REFERENCE_DEVIATION_FACTOR; one held to float64 precision (rtol and atol
    at most 1e-9) against the float32 reference, as it is computed from stored float32 values. A
    pointwise observation (one function evaluated at given inputs: no training, so nothing can fork)
    keeps the float32 reference too: at a kink, float32 puts the branch point where float64 does not,
    so the reference's own deviation there is large and a budget of it would hide a wrong slope.
    `nudged32`: the reference's float32 observations with its initial weights nudged by rounding
    (_harness.NUDGES), for a case that can fork; the allowance is then the largest deviation."""
    stored = tolerance is not None and tolerance.rtol <= _STORED and tolerance.atol <= _STORED
    if pointwise or stored:
        return dataclasses.replace(compare(name, actual, reference32, tolerance), compared_with="float32")
    # The reference's own float32 deviation: its run's, or the largest of its nudged runs' (cases
    # that can fork: what rounding alone can do to a correct float32 run of this case and seed).
    spread = max(reference_deviation(r32, reference64) for r32 in (reference32, *nudged32))
    budget = None if tolerance is None else Tolerance(
        rtol=tolerance.rtol, atol=tolerance.atol + REFERENCE_DEVIATION_FACTOR * spread)
    check = compare(name, actual, reference64, budget)
    return dataclasses.replace(check, compared_with="float64", reference_deviation=spread)
