"""Data-parallel scaling: time a step of the width-1024 model at global batch 2048 on 1 and 2 processes.

    python benchmarks/bench.py --scaling            # writes the "scaling" entry of benchmarks/results.json

For every backend that declares distribution "data_parallel" (polynn.plugins.backend_distributions),
it launches jobs on this machine over 127.0.0.1 (polynn._launch, a timeout on each) that train the
sweep model (Dense 1024 relu, Dense 1024 relu, Dense 1 sigmoid; Adam; float32) under
compile(distribution="data_parallel") for a fixed number of steps, as:

- 1 process with 1 thread, and 1 process with 2 threads (OMP_NUM_THREADS; TF_NUM_INTRAOP_THREADS
  for TensorFlow's own pool), the single-process references;
- 2 processes with 1 thread each, as torchrun starts them (it sets OMP_NUM_THREADS=1).

A step's time is the median over the timed steps of the time from one step's end to the next's
(rank 0's; the ranks wait for each other in every all-reduce). The configurations run in turn,
--runs rounds of them; the report gives each one's median over the rounds and its best round
(the machine is shared: other work only ever slows a round down), with the load average at each.
In the same 2-process job, after training, the all-reduce of one step is timed alone:
polynn.distribution.communicator()'s all_reduce_sum of a NumPy array of the model's parameter
count plus one (the loss term rides along), in the model's dtype, repeated after a barrier each
time; the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH = 1024
BATCH = 2048
WARMUP_STEPS = 2
ALL_REDUCE_REPEATS = 20
# (processes, threads per process): the three ways of running the job on two cores.
CONFIGS = ((1, 1), (1, 2), (2, 1))


def config_name(processes: int, threads: int) -> str:
    return f"{processes}x{threads}"


# ---- worker side (every process of a job) -----------------------------------------------------


def _worker(backend: str, steps: int) -> dict:
    sys.path.insert(0, str(HERE))
    import numpy as np
    import workloads

    from polynn import distribution
    from polynn.callbacks import Callback

    class StepTimes(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.marks: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            if not self.marks:
                self.marks.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            self.marks.append(time.perf_counter())

    distribution.initialize()
    try:
        x, y = workloads.sweep_data(WIDTH, BATCH * steps)
        model = workloads.polynn_model(backend, WIDTH, workloads.sweep_units(WIDTH), distribution="data_parallel")
        model.fit(x[: BATCH * WARMUP_STEPS], y[: BATCH * WARMUP_STEPS], batch_size=BATCH, epochs=1, verbose=0)
        times = StepTimes()
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[times])
        fit = time.perf_counter() - start
        steps_ms = [(b - a) * 1e3 for a, b in zip(times.marks, times.marks[1:])]
        result = {"rank": distribution.rank(), "world_size": distribution.world_size(), "steps": len(steps_ms),
                  "step_ms_median": statistics.median(steps_ms), "step_ms": steps_ms, "fit_s": fit,
                  "params": int(model.count_params()), "threads": _threads()}
        comm = distribution.communicator()
        if comm is not None:
            result["engine"] = comm.engine
            result.update(_all_reduce_ms(comm, distribution, np.zeros(model.count_params() + 1, dtype=np.float32)))
    finally:
        distribution.shutdown()
    return result


def _all_reduce_ms(comm, distribution, buffer) -> dict:
    comm.all_reduce_sum(buffer)  # the first one sets up the engine's buffers for this size
    times = []
    for _ in range(ALL_REDUCE_REPEATS):
        distribution.barrier()
        start = time.perf_counter()
        comm.all_reduce_sum(buffer)
        times.append((time.perf_counter() - start) * 1e3)
    return {"all_reduce_ms_median": statistics.median(times), "all_reduce_ms": times,
            "all_reduce_elements": int(buffer.size), "all_reduce_dtype": str(buffer.dtype)}


def _threads() -> dict:
    """The thread counts the engines this process imported say they use."""
    found = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    torch = sys.modules.get("torch")
    if torch is not None:
        found["torch"] = torch.get_num_threads()
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        found["tensorflow_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
    return found


# ---- parent side ------------------------------------------------------------------------------


def data_parallel_backends() -> list[str]:
    """The registered backends that declare distribution "data_parallel"."""
    from polynn import plugins

    return [e.name for e in plugins.backend_entries() if "data_parallel" in plugins.backend_distributions(e.name)]


def launch_engine(backend: str) -> str:
    """Which launcher's environment the backend's jobs need: torchrun's ("torch") when it trains on
    any host communicator or on torch.distributed, else TF_CONFIG ("tensorflow")."""
    from polynn import plugins
    from polynn._launch import ENGINES

    engines = plugins.get_backend(backend).distribution_engines
    if engines is None or "torch" in engines:
        return "torch"
    for engine in engines:
        if engine in ENGINES:
            return engine
    raise SystemExit(f"backend {backend!r} trains data-parallel on {engines}, which polynn._launch cannot start")


def _job(backend: str, engine: str, processes: int, threads: int, steps: int, timeout: float, env: dict) -> dict:
    from polynn._launch import launch

    env = {**env, "OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads)}
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--steps", str(steps)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    finished = launch(argv, processes, engine=engine, timeout=timeout, grace=10.0, env=env)
    wall = time.perf_counter() - start
    failed = [f for f in finished if f.returncode != 0]
    if failed:
        f = failed[0]
        last = f.stderr.strip().splitlines()[-1] if f.stderr.strip() else ""
        state = "timed out" if f.returncode is None else f"exit {f.returncode}"
        return {"error": f"rank {f.rank} {state}: {last[:300]}", "wall_s": wall, "load_average": load}
    ranks = [json.loads(f.stdout.strip().splitlines()[-1]) for f in finished]
    return {**ranks[0], "wall_s": wall, "load_average": load,
            "rank_step_ms_medians": [r["step_ms_median"] for r in ranks]}


def run(steps: int, rounds: int, backends: list[str] | None, timeout: float, env: dict) -> dict:
    """Every backend's configurations, interleaved `rounds` times (the machine's speed drifts): per
    configuration the median of its rounds' step times."""
    report = {"width": WIDTH, "global_batch": BATCH, "steps": steps, "rounds": rounds, "backends": {}}
    for backend in backends or data_parallel_backends():
        engine = launch_engine(backend)
        samples: dict[str, list[dict]] = {config_name(*c): [] for c in CONFIGS}
        for _ in range(rounds):
            for processes, threads in CONFIGS:
                print(f"scaling {backend}: {processes} process(es), {threads} thread(s) ...", file=sys.stderr,
                      flush=True)
                samples[config_name(processes, threads)].append(
                    _job(backend, engine, processes, threads, steps, timeout, env))
        report["backends"][backend] = _summary(engine, samples)
    return report


def _summary(engine: str, samples: dict[str, list[dict]]) -> dict:
    entry: dict = {"launcher": engine, "configs": {}}
    for name, runs in samples.items():
        errors = [r["error"] for r in runs if "error" in r]
        if errors:
            entry["configs"][name] = {"error": errors[0]}
            continue
        config = {"step_ms_median": statistics.median(r["step_ms_median"] for r in runs),
                  "step_ms_best": min(r["step_ms_median"] for r in runs),
                  "step_ms_rounds": [r["step_ms_median"] for r in runs],
                  "load_average_rounds": [r["load_average"] for r in runs], "params": runs[0]["params"],
                  "threads": runs[0]["threads"]}
        if "all_reduce_ms_median" in runs[0]:
            config["engine"] = runs[0]["engine"]
            config["all_reduce_ms_median"] = statistics.median(r["all_reduce_ms_median"] for r in runs)
            config["all_reduce_ms_rounds"] = [r["all_reduce_ms_median"] for r in runs]
            config["all_reduce_elements"] = runs[0]["all_reduce_elements"]
            config["all_reduce_dtype"] = runs[0]["all_reduce_dtype"]
        entry["configs"][name] = config
    configs = entry["configs"]
    for kind in ("median", "best"):
        two = configs.get("2x1", {}).get(f"step_ms_{kind}")
        for base in ("1x1", "1x2"):
            one = configs.get(base, {}).get(f"step_ms_{kind}")
            entry[f"speedup_2x1_vs_{base}_{kind}"] = None if one is None or two is None else one / two
    return entry


def table(scaling: dict) -> str:
    lines = [f"Data-parallel scaling: width {scaling['width']}, global batch {scaling['global_batch']}, "
             f"{scaling['steps']} timed steps; ms a step, median of {scaling['rounds']} round(s) (best round)", "",
             "| backend | 1 process, 1 thread | 1 process, 2 threads | 2 processes, 1 thread each | "
             "speed-up vs 1x1 | speed-up vs 1x2 | all-reduce (ms/step) |", "|---|---|---|---|---|---|---|"]

    def ms(config):
        if "error" in config:
            return f"error: {config['error']}"
        return f"{config['step_ms_median']:.1f} ({config['step_ms_best']:.1f})" if config else ""

    def times(entry, base):
        median, best = entry[f"speedup_2x1_vs_{base}_median"], entry[f"speedup_2x1_vs_{base}_best"]
        return "" if median is None else f"{median:.2f}x ({best:.2f}x)"

    for backend, entry in scaling["backends"].items():
        configs = entry["configs"]
        two = configs.get("2x1", {})
        reduce = two.get("all_reduce_ms_median")
        reduce = "" if reduce is None else (f"{reduce:.1f} ({two['engine']}, {two['all_reduce_elements']:,} "
                                            f"{two['all_reduce_dtype']})")
        lines.append(f"| {backend} | {ms(configs.get('1x1', {}))} | {ms(configs.get('1x2', {}))} | {ms(two)} | "
                     f"{times(entry, '1x1')} | {times(entry, '1x2')} | {reduce} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", required=True, help="the backend this process trains on")
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(_worker(args.worker, args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
