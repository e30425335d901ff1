"""Choosing cases by fnmatch pattern, and saying so when a pattern chooses none."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import _registry, plugins
from ..errors import UnknownComponentError

if TYPE_CHECKING:
    from ._case import Case

LISTING = "pytest --pyargs polynn.conformance --collect-only -q"


def matching(cases: Iterable[Case], patterns: Iterable[str]) -> list[Case]:
    """The cases whose name matches one of `patterns` (all of them without patterns)."""
    if not patterns:
        return list(cases)
    return [c for c in cases if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


def _alias_suggestion(pattern: str) -> str | None:
    """'loss.mse*' -> 'loss.mean_squared_error*': case names use the canonical name, not an alias."""
    kind, dot, rest = pattern.partition(".")
    if not dot or kind not in _registry.KINDS:
        return None
    name = rest.split("(")[0].rstrip("*?[")
    try:
        found: type[Any] | None = plugins.lookup(kind, name) if name else None
    except UnknownComponentError:
        return None
    canonical = None if found is None else found.name
    if canonical is None or canonical == name:
        return None
    return f"{kind}.{canonical}{rest[len(name):]}"


def unmatched(patterns: Iterable[str], cases: Iterable[Case]) -> list[str]:
    """The patterns matching no case's name."""
    names = [c.name for c in cases]
    return [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in names)]


def close_names(pattern: str, cases: Iterable[Case]) -> list[str]:
    """Up to three case names close to `pattern`: its alias spelled canonically first, then difflib's."""
    close = [s for s in (_alias_suggestion(pattern),) if s]
    names = [c.name for c in cases]
    close += [n for n in difflib.get_close_matches(pattern, names, n=3, cutoff=0.6) if n not in close]
    return close[:3]


def accepted() -> str:
    return (f"fnmatch patterns of case names: blog, blog_dropout, scenario.NAME, op.NAME, and KIND.NAME or "
            f"KIND.NAME(option=value, ...) with KIND one of {', '.join(_registry.KINDS)}; "
            f"list them with: {LISTING}")


def problems(patterns: Iterable[str], cases: Sequence[Case], option: str = "--case") -> list[str]:
    """One message per pattern matching no case: the pattern, close case names, what is accepted."""
    out = []
    for pattern in unmatched(patterns, cases):
        close = close_names(pattern, cases)
        hint = f" Close case names: {', '.join(map(repr, close))}." if close else ""
        out.append(f"{option} {pattern!r} matches no case.{hint} Accepted: {accepted()}")
    return out
