"""The kit's report: the backend's identity, a table of cases, and the JSON written by --report."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
from collections.abc import Iterable
from typing import Any

from .. import __version__, plugins
from ._case import CaseResult


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    name: str
    plugin: str
    distribution: str
    version: str | None
    engine: str
    engine_version: str | None

    @classmethod
    def of(cls, name: str) -> BackendInfo:
        backend = plugins.get_backend(name)  # an unknown name raises UnknownBackendError here
        entry = next(e for e in plugins.backend_entries() if e.name == name)
        distribution, version = entry.distribution, None
        if f"polynn_{entry.plugin}" in plugins.DEFAULT_PLUGINS:
            # Registered by polynn itself, by module name: whatever entry points old metadata lists.
            distribution, version = "polynn", __version__
        else:
            for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP, name=entry.plugin):
                dist = getattr(ep, "dist", None)
                if dist is not None:
                    distribution, version = dist.name, dist.version
        try:
            engine_version = backend.engine_version()
        except Exception as error:  # the version is reported, not needed: say why it is missing
            engine_version = f"unknown ({type(error).__name__}: {error})"
        return cls(name, entry.plugin, distribution, version, backend.engine or entry.engine, engine_version)

    def label(self) -> str:
        dist = self.distribution if self.version is None else f"{self.distribution} {self.version}"
        return f"backend {self.name!r} ({dist}), engine {self.engine} {self.engine_version}"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "inf"
    return f"{value:.2e}"


@dataclasses.dataclass
class Report:
    backend: BackendInfo
    dtype: str
    results: list[CaseResult]
    strict: bool = False
    # The data-parallel part (polynn conformance --world-size N): how many processes, trained on which engine.
    world_size: int | None = None
    distribution_engine: str | None = None

    @classmethod
    def create(cls, backend: str, dtype: str, results: Iterable[CaseResult], strict: bool = False,
               world_size: int | None = None, distribution_engine: str | None = None) -> Report:
        return cls(BackendInfo.of(backend), dtype, list(results), strict, world_size, distribution_engine)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def passed(self) -> bool:
        """True when every supported case passes (and, when strict, none is unsupported)."""
        bad = ("fail", "error", "unsupported") if self.strict else ("fail", "error")
        return not any(r.status in bad for r in self.results)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in ("pass", "fail", "error", "unsupported"))
        part = "" if self.world_size is None else (
            f", data-parallel on {self.world_size} processes ({self.distribution_engine} engine)")
        return f"polynn conformance: {self.backend.label()}, {self.dtype}{part}: {counts}"

    def table_lines(self) -> list[str]:
        width = max([len("case"), *(len(r.name) for r in self.results)])
        lines = [self.summary(), f"{'case':<{width}}  {'status':<11}  {'worst abs':>9}  {'worst rel':>9}"]
        for r in self.results:
            lines.append(f"{r.name:<{width}}  {r.status:<11}  {_number(r.worst_abs):>9}  {_number(r.worst_rel):>9}")
        return lines + self.problem_lines()

    def problem_lines(self) -> list[str]:
        """A line per case that did not pass, with why."""
        return [f"{r.status}: {r.name}: {r.message}" for r in self.results if r.status != "pass" and r.message]

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": dataclasses.asdict(self.backend),
            "polynn_version": __version__,
            "reference": "numpy",
            "dtype": self.dtype,
            "strict": self.strict,
            **({} if self.world_size is None else {"world_size": self.world_size,
                                                   "distribution_engine": self.distribution_engine}),
            "passed": self.passed,
            "counts": {s: self.count(s) for s in ("pass", "fail", "error", "unsupported")},
            "cases": [r.to_json() for r in self.results],
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=2, allow_nan=False)
            handle.write("\n")


def unwritable(path: str | os.PathLike[str]) -> str | None:
    """Why a file could not be written at `path`, or None: checked before the cases run, so a bad
    path fails in a second instead of after the whole kit."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        return "it is a folder"
    if not os.path.isdir(folder):
        return f"its folder {folder} does not exist"
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "permission denied"
    return None


def output_problems(paths: Iterable[tuple[str, str | None]]) -> list[str]:
    """A message for each (option, path) whose file could not be written."""
    return [f"{option} {path}: the file cannot be written: {why}; accepted: a file path in an existing, "
            f"writable folder" for option, path in paths if path and (why := unwritable(path))]
