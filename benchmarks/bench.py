"""Benchmark: polynn on each backend against Keras 3 and hand-written loops, one process per run.

    python benchmarks/bench.py                 # blog table + scale sweep, writes benchmarks/results.json
    python benchmarks/bench.py --runs 5 --no-sweep
    python benchmarks/bench.py --scaling       # data-parallel scaling only, into the same JSON file
    python benchmarks/bench.py --models convnet lstm --no-sweep --no-scaling   # the layer tables, into the file
    python benchmarks/bench.py --models convnet lstm --quick --runs 1 ...      # tiny sizes: checks the script

For each workload: fit time (median of --runs runs), whole-process wall time and peak resident
memory, each run in a process of its own. The sweep reports time per sample and achieved GFLOP/s
beside the machine's float32 matrix-multiply rate measured in the same run. This is a benchmark,
not a test: it asserts nothing, it prints the targets and whether each one holds.

The machine is shared and its speed drifts by 10-30% within minutes, so the two target points
(NumPy and torch at width 1024, batch 256) run --runs times, with the matrix-multiply rate
measured before, between and after them; each run is set against the mean of the rates measured
just before and after it, and the share reported is the median of those ratios. At width 1024,
batch 256 the benchmark also times the step's five matrix products alone in each backend's own
engine (torch and TensorFlow multiply with their own libraries): the ceiling of any training loop
on that engine.

Data-parallel scaling (benchmarks/scaling.py): the sweep model at width 1024, global batch 2048,
trained under distribution="data_parallel" by 1 process (1 thread, then 2 threads) and by 2
processes of 1 thread each, for every backend that declares it; ms a step, the speed-ups and the
all-reduce's time a step.

The convnet and LSTM tables (benchmarks/layer_bench.py, layer_workloads.py): Keras's MNIST
convnet and an Embedding-LSTM model on polynn's backends, Keras 3 on TensorFlow and on torch, and
hand-written TensorFlow and torch loops; a step's time, and the targets set on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import layer_bench  # noqa: E402 (the benchmark's own folder, put on the path just above)
import scaling  # noqa: E402

BLOG = ["polynn-numpy", "polynn-tensorflow", "polynn-torch", "keras-tensorflow", "keras-torch",
        "hand-numpy", "hand-tensorflow-step", "hand-tensorflow-epoch", "hand-torch"]
SWEEP_BACKENDS = ["numpy", "torch", "tensorflow"]
SWEEP_BATCHES = [32, 256, 1024, 4096]   # at width 1024
SWEEP_WIDTHS = [64, 256, 1024, 2048]    # at batch 256
TARGET_BACKENDS = ["numpy", "torch"]     # must reach 60% of the matmul rate at width 1024, batch 256


# ---- worker side (runs inside the measured process) -----------------------------------------


def _worker(args) -> dict:
    sys.path.insert(0, str(HERE))
    import numpy as np
    import workloads

    if args.worker == "startup":
        start = time.perf_counter()
        from polynn.layers import Dense
        from polynn.models import Sequential

        model = Sequential()
        model.add(Dense(64, input_dim=10, activation="relu"))
        for units in (32, 16, 8, 4):
            model.add(Dense(units, activation="relu"))
        model.add(Dense(1, activation="sigmoid"))
        model.compile(optimizer="Adam", loss="binary_crossentropy", metrics=["accuracy"], backend="numpy")
        return {"import_compile": time.perf_counter() - start}
    if args.worker == "matmul":
        return {"gflops": _matmul_rate(np)}
    if args.worker.startswith("products-"):
        return {"gflops": _step_products_rate(args.worker.split("-", 1)[1], args.width, args.batch)}
    if args.model:
        import layer_workloads

        x, y = layer_workloads.data(args.model, args.samples)
        return layer_workloads.WORKLOADS[args.worker](args.model, x, y, args.epochs, args.batch)
    if args.width:
        x, y = workloads.sweep_data(args.width, args.samples)
        units = workloads.sweep_units(args.width)
    else:
        x, y = workloads.blog_data()
        units = workloads.BLOG_UNITS
    run = workloads.WORKLOADS[args.worker]
    if args.warmup:
        run(x[: args.batch * 2], y[: args.batch * 2], units, 1, args.batch)
    return {"fit": run(x, y, units, args.epochs, args.batch)}


def _matmul_rate(np) -> float:
    """Best float32 GFLOP/s of numpy's matmul over a few shapes (the machine's own limit): the
    highest of 3 rounds per shape, since the machine's noise only ever slows a round down."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (256, 1024, 1024), (1024, 1024, 1024)):
        a = np.random.default_rng(0).random((m, k), dtype=np.float32)
        b = np.random.default_rng(1).random((k, n), dtype=np.float32)
        out = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=out)
        reps = max(3, int(1e10 / (2 * m * k * n)))
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                np.matmul(a, b, out=out)
            best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def _step_products_rate(engine: str, width: int, batch: int) -> float:
    """GFLOP/s of the sweep model's five large matrix products of one training step (forward x@W0,
    h@W1; backward x.T@dz0, h.T@dz1, dz1@W1.T), timed alone in `engine` (numpy, torch or
    tensorflow): median of 7 rounds."""
    import numpy as np

    rng = np.random.default_rng(0)
    x, h, dz0, dz1 = (rng.random((batch, width), dtype=np.float32) for _ in range(4))
    w0, w1 = (rng.random((width, width), dtype=np.float32) for _ in range(2))
    out, grad = np.empty((batch, width), np.float32), np.empty((width, width), np.float32)
    if engine == "torch":
        import torch

        x, h, dz0, dz1, w0, w1, out, grad = map(torch.from_numpy, (x, h, dz0, dz1, w0, w1, out, grad))
        matmul = torch.matmul
    elif engine == "tensorflow":
        import tensorflow as tf

        x, h, dz0, dz1, w0, w1 = map(tf.constant, (x, h, dz0, dz1, w0, w1))

        @tf.function(autograph=False)
        def products():
            return (tf.matmul(x, w0), tf.matmul(h, w1), tf.matmul(x, dz0, transpose_a=True),
                    tf.matmul(h, dz1, transpose_a=True), tf.matmul(dz1, w1, transpose_b=True))

        def step():
            [r.numpy() for r in products()]  # waits for the results
    else:
        matmul = np.matmul

    if engine != "tensorflow":
        def step():
            # Into preallocated outputs, as the backends do: the products alone, no allocation.
            matmul(x, w0, out=out), matmul(h, w1, out=out), matmul(x.T, dz0, out=grad)
            matmul(h.T, dz1, out=grad), matmul(dz1, w1.T, out=out)

    step()
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(5):
            step()
        rounds.append((time.perf_counter() - start) / 5)
    return 5 * 2 * batch * width * width / statistics.median(rounds) / 1e9


# ---- parent side ------------------------------------------------------------------------------


# Workers import as an installed package does, from cached bytecode (pip compiles it at install):
# where PYTHONDONTWRITEBYTECODE is set, as on this project's machines, every worker would compile
# polynn's source again (70-90 ms of each import on the benchmark machine), so the workers run
# without it and write the usual __pycache__ folders.
_WORKER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _measure(argv: list[str]) -> dict:
    """Run one worker process; its JSON result plus its wall time and peak RSS (MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_WORKER_ENV)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    # communicate() reaped the child; ru_maxrss of RUSAGE_CHILDREN is the max over all children,
    # so each worker reports its own peak instead (read from /proc at exit would be racy).
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}", "wall": wall}
    result = json.loads(out.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def _run_blog(name: str, runs: int, epochs: int) -> dict:
    samples = [_measure(["--worker", name, "--epochs", str(epochs), "--batch", "32"]) for _ in range(runs)]
    errors = [s["error"] for s in samples if "error" in s]
    if errors:
        return {"error": errors[0]}
    return {
        "fit_median": statistics.median(s["fit"] for s in samples),
        "fit_runs": [s["fit"] for s in samples],
        "wall_median": statistics.median(s["wall"] for s in samples),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in samples),
    }


def _sweep_point(backend: str, width: int, batch: int) -> dict:
    import workloads

    flops_per_sample = workloads.sweep_flops_per_sample(width)
    # At least 16 steps and about 2e11 flops (1-3 s), so a fit's fixed costs (checking the data,
    # building the model, first touch of its buffers) weigh as little as in a real training run.
    samples = max(batch * 16, min(65536, int(2e11 / flops_per_sample) // batch * batch))
    r = _measure(["--worker", f"polynn-{backend}", "--width", str(width), "--samples", str(samples),
                  "--batch", str(batch), "--epochs", "1", "--warmup"])
    if "error" in r:
        return {"error": r["error"]}
    return {"us_per_sample": r["fit"] / samples * 1e6, "gflops": flops_per_sample * samples / r["fit"] / 1e9,
            "samples": samples}


def _target_point(backend: str, runs: int) -> dict:
    """The width-1024, batch-256 point, `runs` times, with the matmul rate measured before the first
    run, between runs and after the last: each run's share is against the mean of the rates measured
    just before and just after it, and the share reported is the median of those."""
    limits = [_measure(["--worker", "matmul"]).get("gflops")]
    points = []
    for _ in range(runs):
        points.append(_sweep_point(backend, 1024, 256))
        limits.append(_measure(["--worker", "matmul"]).get("gflops"))
    errors = [p["error"] for p in points if "error" in p]
    if errors or None in limits:
        return {"error": errors[0] if errors else "matmul measurement failed"}
    around = [(before + after) / 2 for before, after in zip(limits, limits[1:])]
    shares = [p["gflops"] / limit for p, limit in zip(points, around)]
    middle = sorted(range(runs), key=lambda i: shares[i])[runs // 2]
    return {**points[middle], "share_median": statistics.median(shares), "shares": shares,
            "limits": limits, "gflops_runs": [p["gflops"] for p in points]}


def _ratio(a, b):
    return None if a is None or b is None else a / b


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--no-scaling", action="store_true", help="skip the data-parallel scaling")
    parser.add_argument("--scaling", action="store_true",
                        help="run only the data-parallel scaling (--runs rounds) and write it into --out, "
                             "keeping the rest of that file")
    parser.add_argument("--scaling-steps", type=int, default=8, help="timed steps of each scaling job")
    parser.add_argument("--only", nargs="*", help="workloads to run, of every model's table (default: all)")
    models = ["blog", *layer_bench.MODELS]
    parser.add_argument("--models", nargs="*", choices=models, default=models, help="the tables to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="the convnet and LSTM at tiny sizes (2 steps, 2 epochs): checks the script only")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of each worker's engine (OMP, BLAS, TensorFlow's pools); default: the engines'")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        import resource

        result = _worker(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    machine = {"python": platform.python_version(), "platform": platform.platform(),
               "processor": _cpu_name(), "cores": os.cpu_count(), "threads": args.threads}
    if args.threads:
        # Read by NumPy's BLAS, torch and TensorFlow as they start: each worker computes on that many threads.
        _WORKER_ENV.update({name: str(args.threads) for name in (
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")})
        _WORKER_ENV["TF_NUM_INTEROP_THREADS"] = "1"
    if args.scaling:
        out = Path(args.out)
        report = json.loads(out.read_text()) if out.exists() else {"machine": machine}
        report["scaling"] = _run_scaling(args, machine)
        out.write_text(json.dumps(report, indent=2))
        print(scaling.table(report["scaling"]))
        print(f"\nwrote {args.out}")
        return 0
    report = {"machine": machine, "epochs": args.epochs, "runs": args.runs, "blog": {}, "sweep": {}, "layers": {}}
    if "blog" in args.models:
        for name in [n for n in BLOG if not args.only or n in args.only]:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            report["blog"][name] = _run_blog(name, args.runs, args.epochs)
        _measure(["--worker", "startup"])  # untimed: writes the bytecode if no earlier worker has
        startup = [_measure(["--worker", "startup"]) for _ in range(args.runs)]
        report["startup"] = {"import_compile_median": statistics.median(s["import_compile"] for s in startup)}
    for model in [m for m in layer_bench.MODELS if m in args.models]:
        print(f"running the {model} workloads ...", file=sys.stderr, flush=True)
        names = [n for n in layer_bench.NAMES if not args.only or n in args.only]
        report["layers"][model] = layer_bench.run(model, names, args.runs, args.quick, _measure)
    if not args.no_sweep:
        report["sweep"]["matmul_gflops"] = _measure(["--worker", "matmul"])["gflops"]
        for backend in SWEEP_BACKENDS:
            for batch in SWEEP_BATCHES:
                print(f"sweep {backend} width 1024 batch {batch} ...", file=sys.stderr, flush=True)
                if batch == 256 and backend in TARGET_BACKENDS:
                    point = _target_point(backend, args.runs)
                else:
                    point = _sweep_point(backend, 1024, batch)
                if batch == 256:
                    products = _measure(["--worker", f"products-{backend}", "--width", "1024", "--batch", "256"])
                    point["engine_products_gflops"] = products.get("gflops")
                report["sweep"][f"{backend}/w1024/b{batch}"] = point
            for width in SWEEP_WIDTHS:
                if width == 1024:
                    continue
                print(f"sweep {backend} width {width} batch 256 ...", file=sys.stderr, flush=True)
                report["sweep"][f"{backend}/w{width}/b256"] = _sweep_point(backend, width, 256)
        # The limit for the other points: the median of every matmul-rate measurement of the run.
        rates = [report["sweep"]["matmul_gflops"]] + [
            rate for point in report["sweep"].values() if isinstance(point, dict) for rate in point.get("limits", [])]
        report["sweep"]["matmul_gflops"] = statistics.median(rates)
    if not args.no_scaling:
        report["scaling"] = _run_scaling(args, machine)
    report["targets"] = _targets(report)
    out = Path(args.out)
    written = report
    if "blog" not in args.models and out.exists():
        # The layer tables alone go into the file, as --scaling does: its other parts are kept.
        written = json.loads(out.read_text())
        written.setdefault("layers", {}).update(report["layers"])
        written["targets"] = _targets(written)
    out.write_text(json.dumps(written, indent=2))
    print(_table(report))
    print(f"\nwrote {args.out}")
    return 0


def _run_scaling(args, machine) -> dict:
    load = os.getloadavg()
    result = scaling.run(args.scaling_steps, args.runs, None, timeout=300.0, env=_WORKER_ENV)
    return {**result, "machine": machine, "load_average_before": load[0], "load_average_after": os.getloadavg()[0]}


def _fit(report, name):
    entry = report["blog"].get(name, {})
    return entry.get("fit_median")


def _targets(report) -> list[dict]:
    t = []
    if report["blog"]:
        t += _blog_targets(report)
    for model, part in report.get("layers", {}).items():
        t += layer_bench.targets(model, part)
    return t


def _blog_targets(report) -> list[dict]:
    t = []

    def add(what, value, limit):
        t.append({"target": what, "value": value, "limit": limit,
                  "holds": None if value is None else value <= limit})

    add("polynn-numpy / keras-tensorflow", _ratio(_fit(report, "polynn-numpy"), _fit(report, "keras-tensorflow")), 0.2)
    add("polynn-tensorflow / keras-tensorflow",
        _ratio(_fit(report, "polynn-tensorflow"), _fit(report, "keras-tensorflow")), 0.25)
    add("polynn-torch / keras-torch", _ratio(_fit(report, "polynn-torch"), _fit(report, "keras-torch")), 0.35)
    add("polynn-numpy / hand-numpy", _ratio(_fit(report, "polynn-numpy"), _fit(report, "hand-numpy")), 1.25)
    add("polynn-tensorflow / hand-tensorflow-epoch",
        _ratio(_fit(report, "polynn-tensorflow"), _fit(report, "hand-tensorflow-epoch")), 1.25)
    add("polynn-torch / hand-torch", _ratio(_fit(report, "polynn-torch"), _fit(report, "hand-torch")), 1.25)
    for backend in TARGET_BACKENDS:
        point = report.get("sweep", {}).get(f"{backend}/w1024/b256", {})
        value = point.get("share_median")
        t.append({"target": f"polynn-{backend} at width 1024, batch 256: share of matmul rate", "value": value,
                  "limit": 0.6, "holds": None if value is None else value >= 0.6})
    add("import polynn + compile blog model on numpy (s)", report.get("startup", {}).get("import_compile_median"), 0.3)
    rss = report["blog"].get("polynn-numpy", {}).get("peak_rss_mb")
    add("polynn-numpy blog process peak RSS (MB)", rss, 200)
    return t


def _table(report) -> str:
    threads = report["machine"].get("threads")
    machine = (f"Machine: {report['machine']['processor']}, {report['machine']['cores']} cores, "
               f"Python {report['machine']['python']}" + (f"; {threads} thread(s) a worker" if threads else ""))
    if not report["blog"]:
        lines = [machine]
    else:
        lines = [f"{machine}; blog example, {report['epochs']} epochs, batch 32, median of {report['runs']} runs", "",
                 "| workload | fit (s) | process wall (s) | peak RSS (MB) | vs Keras same engine | vs hand-written |",
                 "|---|---|---|---|---|---|"]
    keras = {"numpy": "keras-tensorflow", "tensorflow": "keras-tensorflow", "torch": "keras-torch"}
    hand = {"numpy": "hand-numpy", "tensorflow": "hand-tensorflow-epoch", "torch": "hand-torch"}
    for name, entry in report["blog"].items():
        if "error" in entry:
            lines.append(f"| {name} | error: {entry['error']} | | | | |")
            continue
        vs_keras = vs_hand = ""
        if name.startswith("polynn-"):
            engine = name.split("-", 1)[1]
            r = _ratio(entry["fit_median"], _fit(report, keras[engine]))
            vs_keras = "" if r is None else f"{r:.2f}x"
            r = _ratio(entry["fit_median"], _fit(report, hand[engine]))
            vs_hand = "" if r is None else f"{r:.2f}x"
        lines.append(f"| {name} | {entry['fit_median']:.2f} | {entry['wall_median']:.2f} | "
                     f"{entry['peak_rss_mb']:.0f} | {vs_keras} | {vs_hand} |")
    sweep = report.get("sweep") or {}
    if sweep:
        lines += ["", f"Scale sweep (float32 matmul limit measured: {sweep['matmul_gflops']:.1f} GFLOP/s)", "",
                  "| point | us/sample | GFLOP/s | share of limit |", "|---|---|---|---|"]
        notes = []
        for key, point in sweep.items():
            if key == "matmul_gflops":
                continue
            if "error" in point:
                lines.append(f"| {key} | error: {point['error']} | | |")
                continue
            share = f"{point['gflops'] / sweep['matmul_gflops']:.0%}"
            products = point.get("engine_products_gflops")
            products = "" if products is None else (f"; the step's five matrix products alone in this engine: "
                                                    f"{products:.1f} GFLOP/s")
            if "share_median" in point:
                share = f"{point['share_median']:.0%} (median of {len(point['shares'])} runs)"
                limits = ", ".join(f"{v:.0f}" for v in point["limits"])
                runs = ", ".join(f"{v:.1f}" for v in point["gflops_runs"])
                notes.append(f"- {key}: runs at {runs} GFLOP/s; matmul rates measured before, between and after "
                             f"them: {limits}{products}.")
            elif products:
                notes.append(f"- {key}{products}.")
            lines.append(f"| {key} | {point['us_per_sample']:.1f} | {point['gflops']:.1f} | {share} |")
        if notes:
            lines += [""] + notes
    for model, part in report.get("layers", {}).items():
        lines += ["", layer_bench.table(model, part)]
    if report.get("scaling"):
        lines += ["", scaling.table(report["scaling"])]
    lines += ["", "| target | measured | limit | holds |", "|---|---|---|---|"]
    for t in report["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"| {t['target']} | {value} | {t['limit']} | {t['holds']} |")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
