"""deferred_interrupts(): Ctrl-C held over a short block that must not be cut halfway."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["deferred_interrupts"]


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C held until the block is done, then delivered (as KeyboardInterrupt by default).

    For a runtime's code that an interrupt must not cut halfway: restoring a snapshot, or an
    engine's graph tracing that is not interrupt-safe (TensorFlow's turns a Ctrl-C into a
    SystemError). Keep the block short. In the main thread, where Python runs signal handlers,
    SIGINT's handler only records the signal meanwhile (the kernel may hand a process's SIGINT to
    any of its threads, such as a BLAS pool's, so blocking it in one thread is not enough), and on
    POSIX SIGINT is also blocked there, so no system call in the block is interrupted. Elsewhere
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[FrameType | None] = []
    previous = signal.getsignal(signal.SIGINT)
    swapped = previous is not None  # None: a handler not installed from Python, which cannot be put back
    if swapped:
        signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if swapped:
            signal.signal(signal.SIGINT, previous)
            if caught:
                _deliver(previous, caught[0])


def _deliver(handler: Any, frame: FrameType | None) -> None:
    """Give a held SIGINT to the handler it was meant for: Python's (KeyboardInterrupt by default)
    or a user's is called; the default action is the system's, so the signal is sent again."""
    if callable(handler):
        handler(signal.SIGINT, frame)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signal.SIGINT)
