"""polynn.backend.deferred_interrupts: Ctrl-C is held over the block, whichever thread the kernel hands it to."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from polynn.backend import deferred_interrupts

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.kill(SIGINT) to oneself is POSIX")


def _interrupt_inside(ready_threads: int) -> list[str]:
    events = []
    stop = threading.Event()
    # Threads that do not block SIGINT, as a BLAS or engine thread pool: the kernel may deliver a
    # process's SIGINT to any of them rather than to the main thread, whose mask blocks it.
    workers = [threading.Thread(target=stop.wait) for _ in range(ready_threads)]
    for worker in workers:
        worker.start()
    try:
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(50):  # bytecode boundaries, where Python runs signal handlers
                time.sleep(0.001)
            events.append("block done")
    except KeyboardInterrupt:
        events.append("KeyboardInterrupt")
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    return events


@pytest.mark.parametrize("threads", [0, 4])
def test_ctrl_c_waits_for_the_end_of_the_block(threads):
    assert _interrupt_inside(threads) == ["block done", "KeyboardInterrupt"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_users_handler_gets_the_held_signal_after_the_block():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            assert calls == []
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_it_does_nothing():
    outcome = []

    def run():
        with deferred_interrupts():
            outcome.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert outcome == [signal.default_int_handler]
