"""A conformance case, and the outcome of running it on one backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ._compare import Check, Tolerance, finite_or_none

STATUSES = ("pass", "fail", "unsupported", "error")

# A case's scenario: (backend name, dtype) -> named observations.
Scenario = Callable[[str, str], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Case:
    """A scenario run through the public model API on the reference and on the backend under test.

    scenario(backend, dtype) returns named observations (arrays); tolerances(dtype) names the
    observations that are checked and how closely; the others are measured and reported only.
    components: the component specs the case is about, checked with Backend.supports first.
    plotted: observations that --plot overlays (per-step loss curves).
    """

    name: str
    kind: str
    scenario: Scenario
    tolerances: Callable[[str], dict[str, Tolerance]]
    components: tuple = ()
    plotted: tuple[str, ...] = ()


@dataclasses.dataclass
class CaseResult:
    name: str
    kind: str
    status: str
    checks: list[Check] = dataclasses.field(default_factory=list)
    message: str = ""
    # An error's full traceback (status "error"), in the JSON report and shown by --tb.
    traceback: str = ""
    # observation name -> {"backend": array, "reference": array}, for the observations plotted.
    series: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)

    def _worst(self, attribute: str) -> float | None:
        values = [getattr(c, attribute) for c in self.checks if c.tolerance is not None]
        values = [v for v in values if v is not None]
        if any(c.tolerance is not None and getattr(c, attribute) is None for c in self.checks):
            return float("inf")
        return max(values) if values else None

    @property
    def worst_abs(self) -> float | None:
        """The largest absolute deviation over the checked observations."""
        return self._worst("worst_abs")

    @property
    def worst_rel(self) -> float | None:
        return self._worst("worst_rel")

    def failure_text(self) -> str:
        if self.status == "error":
            return self.message
        lines = [f"{c.name}: worst abs {c.worst_abs:.3g}, worst rel {c.worst_rel:.3g} "
                 f"(rtol {c.tolerance.rtol:g}, atol {c.tolerance.atol:g}) {c.detail}".rstrip()
                 if c.worst_abs is not None else f"{c.name}: {c.detail}"
                 for c in self.checks if c.tolerance is not None and not c.passed]
        return "; ".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "kind": self.kind,
            "status": self.status,
            "worst_abs": finite_or_none(self.worst_abs),
            "worst_rel": finite_or_none(self.worst_rel),
            "tolerances": {c.name: c.tolerance.to_json() for c in self.checks if c.tolerance is not None},
            "checks": [c.to_json() for c in self.checks],
            "message": self.message,
            "traceback": self.traceback or None,
        }
