"""deferred_interrupts(): Ctrl-C held over a short block that must not be cut halfway."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["deferred_interrupts"]


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C held until the block is done, then raised as KeyboardInterrupt.

    For a runtime's code that an interrupt must not cut halfway: restoring a snapshot, or an
    engine's graph tracing that is not interrupt-safe (TensorFlow's turns a Ctrl-C into a
    SystemError). Keep the block short. SIGINT is blocked on POSIX in the main thread, where
    Python delivers it; elsewhere this does nothing.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
