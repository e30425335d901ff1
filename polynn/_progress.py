"""Keras-style progress output: an in-place bar on a terminal, one line per epoch elsewhere."""

from __future__ import annotations

import sys
import time
from typing import IO


def format_value(value: float, verbose: int = 1) -> str:
    """Keras's Progbar: 4 decimals above 1e-3 in magnitude, else scientific (0 too: 0.0000e+00);
    its verbose=2 line compares the signed value, so a negative one is scientific there."""
    large = (abs(value) if verbose == 1 else value) > 1e-3
    return f"{value:.4f}" if large else f"{value:.4e}"


def format_logs(logs: dict, verbose: int = 1) -> str:
    return "".join(f" - {name}: {format_value(value, verbose)}" for name, value in sorted(logs.items()))


def _per_step(seconds: float) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class Progress:
    """verbose 1: a bar redrawn in place on a terminal (one final line when not a terminal);
    verbose 2: Keras's compact line once done (per epoch in fit; once for evaluate and predict),
    "steps/steps - 0s - 3ms/step - loss: ...", nothing when there were no steps; verbose 0: silent."""

    WIDTH = 20

    def __init__(self, steps: int, verbose: int, stream: IO[str] | None = None) -> None:
        self.steps, self.verbose = steps, verbose
        self.stream = stream or sys.stdout
        self.interactive = verbose == 1 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.width = 0  # of the frame on screen, so a shorter redraw can blank the rest

    def _frame(self, line: str) -> str:
        padded = line.ljust(self.width)
        self.width = len(line)
        return "\r" + padded

    def update(self, done: int, logs: dict) -> None:
        if self.interactive:
            self.stream.write(self._frame(self._bar_line(done, logs)))
            self.stream.flush()

    def finish(self, logs: dict) -> None:
        if self.verbose == 0:
            return
        if self.verbose == 1:
            line = self._bar_line(self.steps, logs)
            self.stream.write((self._frame(line) + "\n") if self.interactive else (line + "\n"))
        elif self.steps > 0:
            elapsed = time.perf_counter() - self.start
            per = _per_step(elapsed / self.steps)
            self.stream.write(f"{self.steps}/{self.steps} - {elapsed:.0f}s - {per}{format_logs(logs, 2)}\n")
        self.stream.flush()

    def _bar_line(self, done: int, logs: dict) -> str:
        elapsed = time.perf_counter() - self.start
        filled = int(self.WIDTH * done / max(self.steps, 1))
        if self._unicode():
            bar = "\u2501" * filled + " " * (self.WIDTH - filled)
        else:
            bar = "=" * filled + "." * (self.WIDTH - filled)
        width = len(str(self.steps))
        per = _per_step(elapsed / max(done, 1))
        return f"{done:>{width}}/{self.steps} {bar} {elapsed:.0f}s {per}{format_logs(logs)}"

    def _unicode(self) -> bool:
        encoding = getattr(self.stream, "encoding", None) or ""
        return encoding.lower().replace("-", "") in ("utf8", "utf16", "utf32")


def epoch_header(epoch: int, epochs: int, verbose: int, stream=None) -> None:
    if verbose:
        (stream or sys.stdout).write(f"Epoch {epoch + 1}/{epochs}\n")
