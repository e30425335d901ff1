"""polynn's conformance kit: any backend, compared with the NumPy reference, case by case.

Run it with `polynn conformance BACKEND`, or through pytest (the kit is a pytest plugin):
`pytest --pyargs polynn.conformance --polynn-backend BACKEND` (repeatable, as --polynn-dtype), or from
Python with `run()`. `polynn conformance BACKEND --world-size N` (`run_data_parallel()`) runs its
data-parallel part: N local processes against one.
"""

from ._case import Case, CaseResult
from ._compare import Check, Tolerance
from .distributed import run_data_parallel
from .report import BackendInfo, Report
from .runner import REFERENCE, all_cases, run, run_case

__all__ = ["BackendInfo", "Case", "CaseResult", "Check", "REFERENCE", "Report", "Tolerance", "all_cases", "run",
           "run_case", "run_data_parallel"]
