"""How far a backend's observation is from the reference's, and whether that is within tolerance."""

from __future__ import annotations

import dataclasses
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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checked": self.tolerance is not None,
            "passed": self.passed,
            "worst_abs": finite_or_none(self.worst_abs),
            "worst_rel": finite_or_none(self.worst_rel),
            "tolerance": None if self.tolerance is None else self.tolerance.to_json(),
            "detail": self.detail,
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
