"""Start the processes of a data-parallel job on this machine, as torchrun (or TF_CONFIG) would."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

from .errors import InvalidArgumentError

__all__ = ["ENGINES", "Finished", "free_ports", "job_environment", "launch"]

LOOPBACK = "127.0.0.1"
ENGINES = ("torch", "tensorflow")


@dataclasses.dataclass
class Finished:
    """One process of a launched job: its rank, exit status (None: killed after the job's time ran
    out), and what it printed when its output was captured."""

    rank: int
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


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
    for name in ("TF_CONFIG", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
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


def launch(argv: Sequence[str], world_size: int, *, engine: str = "torch", timeout: float = 600.0,
           grace: float = 60.0, capture: bool = True, env: Mapping[str, str] | None = None,
           cwd: str | None = None) -> list[Finished]:
    """Run `argv` (a command, such as [sys.executable, "train.py"]) as `world_size` processes of one
    job on this machine and wait for them, at most `timeout` seconds in all. When one fails, the
    others get `grace` seconds to stop by themselves (polynn raises in them once a collective
    fails), then are killed, as torchrun does."""
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise InvalidArgumentError("world_size", world_size, "a positive integer", owner="polynn launch")
    started = time.monotonic()
    # Files, not pipes: a process that prints much would block on a full pipe while this one waits.
    files = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) if capture else (None, None)
             for _ in range(world_size)]
    processes = [subprocess.Popen(list(argv), env=e, cwd=cwd, stdout=out, stderr=err, text=True)
                 for e, (out, err) in zip(job_environment(engine, world_size, env), files)]
    ended: dict[int, float] = {}
    deadline = started + timeout
    try:
        while len(ended) < world_size:
            for rank, process in enumerate(processes):
                if rank not in ended and process.poll() is not None:
                    ended[rank] = time.monotonic() - started
                    if process.returncode != 0:
                        deadline = min(deadline, time.monotonic() + grace)
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    results = []
    for rank, (process, (out, err)) in enumerate(zip(processes, files)):
        process.wait()
        texts = []
        for handle in (out, err):
            if handle is None:
                texts.append("")
                continue
            handle.seek(0)
            texts.append(handle.read())
            handle.close()
        code = process.returncode if rank in ended else None
        results.append(Finished(rank, code, *texts, ended.get(rank, time.monotonic() - started)))
    return results
