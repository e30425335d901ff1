"""polynn's conformance kit: any backend, compared with the NumPy reference, case by case.

Run it with `polynn conformance BACKEND`, or through pytest (the kit is a pytest plugin):
`pytest --pyargs polynn.conformance --polynn-backend BACKEND` (repeatable, as --polynn-dtype), or from
Python with `run()`.
"""

from ._case import Case, CaseResult
from ._compare import Check, Tolerance
from .report import BackendInfo, Report
from .runner import REFERENCE, all_cases, run, run_case

__all__ = ["BackendInfo", "Case", "CaseResult", "Check", "REFERENCE", "Report", "Tolerance", "all_cases", "run",
           "run_case"]
