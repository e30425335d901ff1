"""Start the processes of a data-parallel job on this machine, as torchrun (or TF_CONFIG) would."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO

from .errors import InvalidArgumentError

__all__ = ["ENGINES", "Finished", "first_failure", "free_ports", "job_environment", "launch", "tail"]

LOOPBACK = "127.0.0.1"
ENGINES = ("torch", "tensorflow")

# Variables of another job the launcher may itself run in, which would override the ones set here.
_JOB_VARIABLES = ("TF_CONFIG", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                  "POLYNN_DISTRIBUTION_JOB_ADDRESSES", "POLYNN_DISTRIBUTION_NUM_PROCESSES",
                  "POLYNN_DISTRIBUTION_PROCESS_ID")

# Seconds a process gets to exit after SIGTERM (or SIGINT, on Ctrl-C) before it is killed.
_TERMINATE_WAIT = 5.0
_POSIX = hasattr(os, "killpg")
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)


@dataclasses.dataclass
class Finished:
    """One process of a launched job: its rank, exit status (negative: the signal that ended it;
    None: still running when the job's time ran out, or when another rank failed and the grace
    period ended, so it was killed), what it printed when its output was captured, and the
    seconds from the job's start to its end."""

    rank: int
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.returncode != 0

    def describe(self) -> str:
        """What became of the process, in a few words: 'rank 1 exited with status 2 after 3.1 s'."""
        if self.returncode is None:
            return f"rank {self.rank} was still running after {self.seconds:.1f} s and was killed"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"rank {self.rank} was ended by {name} after {self.seconds:.1f} s"
        return f"rank {self.rank} exited with status {self.returncode} after {self.seconds:.1f} s"


def tail(text: str, limit: int = 2000) -> str:
    """The end of `text`, at most about `limit` characters, from the start of a line when it was cut."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    if 0 <= newline < len(cut) - 1:
        cut = cut[newline + 1:]
    return f"[... {len(text) - len(cut)} characters before]\n{cut}"


def first_failure(finished: Sequence[Finished]) -> Finished | None:
    """The process that failed first (the likely cause: the others often fail because it did),
    those killed at the end of the job's time last; None when every process succeeded."""
    failed = [f for f in finished if f.failed]
    return min(failed, key=lambda f: (f.returncode is None, f.seconds, f.rank), default=None)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on the loopback address now (bound, then released)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def job_environment(engine: str, world_size: int, base: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Each process's environment for a job of `world_size` processes on this machine, over the
    loopback address only: torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT) for the torch engine, TF_CONFIG for TensorFlow's."""
    if engine not in ENGINES:
        raise InvalidArgumentError("engine", engine, ", ".join(ENGINES), owner="polynn launch")
    base = dict(os.environ if base is None else base)
    for name in _JOB_VARIABLES:
        base.pop(name, None)
    if sys.platform.startswith("linux"):
        base.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo binds the loopback, not what the hostname resolves to
    base.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N processes share the cores
    envs = []
    if engine == "torch":
        (port,) = free_ports(1)
        for rank in range(world_size):
            envs.append({**base, "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                         "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": LOOPBACK, "MASTER_PORT": str(port)})
    else:
        workers = [f"{LOOPBACK}:{port}" for port in free_ports(world_size)]
        for rank in range(world_size):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}
            envs.append({**base, "TF_CONFIG": json.dumps(config), "LOCAL_RANK": str(rank)})
    return envs


def _signal(process: subprocess.Popen, sig: int) -> None:
    """Send `sig` to a process not yet reaped and to what it started (its process group, on POSIX).
    A process this one has not reaped keeps its pid, so the group signalled is its own."""
    if process.returncode is not None:
        return
    try:
        if _POSIX:
            os.killpg(process.pid, sig)
        elif sig == _KILL:
            process.kill()
        else:
            process.terminate()
    except (ProcessLookupError, PermissionError):
        pass  # it ended in the meantime


def _stop(processes: Sequence[subprocess.Popen], first: int, wait: float) -> None:
    """Send `first` to the processes still running, give them `wait` seconds, kill the rest, and
    reap every one (no zombie is left)."""
    running = [p for p in processes if p.poll() is None]
    for p in running:
        _signal(p, first)
    deadline = time.monotonic() + wait
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [p for p in running if p.poll() is None]
    for p in running:
        _signal(p, _KILL)
    for p in processes:
        p.wait()


def _close(files: Sequence[tuple[IO[bytes] | None, IO[bytes] | None]]) -> None:
    for handles in files:
        for handle in handles:
            if handle is not None:
                handle.close()


def _read(handle: IO[bytes] | None) -> str:
    if handle is None:
        return ""
    handle.seek(0)
    # Bytes, decoded leniently: a process may print anything, or be killed mid-character.
    text = handle.read().decode("utf-8", errors="replace")
    handle.close()
    return text


def launch(argv: Sequence[str], world_size: int, *, engine: str = "torch", timeout: float = 600.0,
           grace: float = 60.0, capture: bool = True, env: Mapping[str, str] | None = None,
           cwd: str | None = None) -> list[Finished]:
    """Run `argv` (a command, such as [sys.executable, "train.py"]) as `world_size` processes of one
    job on this machine and wait for them, at most `timeout` seconds in all. When one fails, the
    others get `grace` seconds to stop by themselves (polynn raises in them once a collective
    fails), then are killed, as torchrun does; so are those still running at the timeout (SIGTERM,
    then SIGKILL 5 s later, each with the processes it started). A Ctrl-C (KeyboardInterrupt) is
    passed on to the processes as SIGINT, they get `grace` seconds to stop, then it is re-raised.

    capture=True collects each process's output (in Finished.stdout and .stderr, what a killed
    process printed too: Python processes are run unbuffered); capture=False lets them print to
    this process's own output."""
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise InvalidArgumentError("world_size", world_size, "a positive integer", owner="polynn launch")
    for name, value in (("timeout", timeout), ("grace", grace)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise InvalidArgumentError(name, value, "seconds, a number >= 0", owner="polynn launch")
    environments = job_environment(engine, world_size, env)
    if capture:
        for e in environments:
            e.setdefault("PYTHONUNBUFFERED", "1")  # what a process printed before it was killed reaches its file
    started = time.monotonic()
    # Files, not pipes: a process that prints much would block on a full pipe while this one waits.
    files: list[tuple[IO[bytes] | None, IO[bytes] | None]] = []
    processes: list[subprocess.Popen] = []
    ended: dict[int, float] = {}
    try:
        for e in environments:
            files.append((tempfile.TemporaryFile(), tempfile.TemporaryFile()) if capture else (None, None))
            out, err = files[-1]
            # Each process leads a process group of its own, so that what it starts is stopped with it.
            processes.append(subprocess.Popen(list(argv), env=e, cwd=cwd, stdout=out, stderr=err,
                                              stdin=subprocess.DEVNULL if capture else None,
                                              start_new_session=_POSIX))
        deadline = started + timeout
        while True:
            for rank, process in enumerate(processes):
                if rank not in ended and process.poll() is not None:
                    ended[rank] = time.monotonic() - started
                    if process.returncode != 0:
                        deadline = min(deadline, time.monotonic() + grace)
            if len(ended) == world_size or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        _stop(processes, signal.SIGTERM, _TERMINATE_WAIT)
    except KeyboardInterrupt:
        try:
            _stop(processes, signal.SIGINT, grace)
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            _stop(processes, _KILL, 0.0)
        finally:
            _close(files)
        raise
    except BaseException:
        try:
            _stop(processes, _KILL, 0.0)
        finally:
            _close(files)
        raise
    now = time.monotonic() - started
    return [Finished(rank, process.returncode if rank in ended else None, _read(out), _read(err),
                     ended.get(rank, now))
            for rank, (process, (out, err)) in enumerate(zip(processes, files))]
