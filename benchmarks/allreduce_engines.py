"""Benchmark: latency of a SUM all-reduce of float64 NumPy arrays on 2 local processes, gloo against MPI.

    python benchmarks/allreduce_engines.py                                  # torch.distributed gloo
    mpiexec -n 2 python benchmarks/allreduce_engines.py --engine mpi        # mpi4py (not a polynn dependency)

The gloo run launches its 2 processes itself (polynn._launch: 127.0.0.1, a free port, a timeout)
and reduces torch tensors that share the arrays' memory, as polynn's torch communicator does; the
MPI run reduces in place with Allreduce(MPI.IN_PLACE, array). For each size, every timed
all-reduce follows a barrier, so both processes enter it together; rank 0 prints one JSON line
with the median, 10th and 90th percentile in microseconds. docs/performance.md has the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

SIZES = (1_000, 100_000, 1_000_000)
REPEATS = {1_000: 500, 100_000: 200, 1_000_000: 50}
WARMUP = 10


def _time(all_reduce, barrier, np) -> dict:
    results = {}
    for size in SIZES:
        array = np.full(size, 0.5)
        all_reduce(array)
        if not (array == 1.0).all():  # 0.5 + 0.5 on both processes: the engine really summed
            raise SystemExit(f"all-reduce of {size} elements gave {array[:3]}, not 1.0")
        for _ in range(WARMUP):
            all_reduce(array)
        times = []
        for _ in range(REPEATS[size]):
            barrier()
            start = time.perf_counter()
            all_reduce(array)
            times.append(time.perf_counter() - start)
        times.sort()
        results[str(size)] = {"median_us": statistics.median(times) * 1e6,
                              "p10_us": times[len(times) // 10] * 1e6, "p90_us": times[len(times) * 9 // 10] * 1e6,
                              "repeats": len(times)}
    return results


def _gloo_worker() -> dict:
    import datetime

    import numpy as np
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                            timeout=datetime.timedelta(seconds=60))
    try:
        results = _time(lambda a: dist.all_reduce(torch.from_numpy(a), op=dist.ReduceOp.SUM), dist.barrier, np)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return {"engine": "gloo", "version": f"torch {torch.__version__}", "rank": int(os.environ["RANK"]),
            "results": results}


def _mpi_worker() -> dict:
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.size != 2:
        raise SystemExit(f"run it as 2 processes (mpiexec -n 2), not {comm.size}")
    results = _time(lambda a: comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM), comm.Barrier, np)
    library = MPI.Get_library_version().splitlines()[0].strip()
    return {"engine": "mpi", "version": f"mpi4py {__import__('mpi4py').__version__}, {library}",
            "rank": comm.rank, "results": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("gloo", "mpi"), default="gloo")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine == "mpi" or args.worker:
        report = _mpi_worker() if args.engine == "mpi" else _gloo_worker()
        if report["rank"] == 0:
            print(json.dumps(report))
        return 0
    from polynn._launch import launch

    finished = launch([sys.executable, os.path.abspath(__file__), "--engine", "gloo", "--worker"], 2,
                      timeout=args.timeout, grace=10.0)
    for process in finished:
        if process.returncode != 0:
            sys.stderr.write(process.stderr[-2000:])
            raise SystemExit(f"rank {process.rank} ended with {process.returncode}")
    print(finished[0].stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
