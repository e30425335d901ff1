"""Benchmark on a GPU: polynn's torch and TensorFlow backends against Keras 3 and hand-written loops on the same device.

    python benchmarks/gpu.py                        # the GPU: blog table and sweep, writes benchmarks/results_gpu.json
    python benchmarks/gpu.py --runs 5 --no-sweep
    python benchmarks/gpu.py --device cpu --quick   # tiny sizes on the CPU: checks the script (the tests run it)

The workloads are benchmarks/workloads.py's, given the device in each engine's spelling: polynn's
torch backend compile(device="cuda") against Keras 3 on torch (KERAS_TORCH_DEVICE) and the
hand-written torch loop, the tensors on "cuda"; polynn's TensorFlow backend compile(device="gpu")
against Keras 3 on TensorFlow and the hand-written TensorFlow loops under tf.device("/GPU:0").
--device cpu runs the same on the CPU. Every run is a process of its own (--quick: one process per
engine for all of that engine's runs); the output names the device each engine ran on (the GPU's
model from torch.cuda.get_device_name and tf.config.experimental.get_device_details).

The blog table is fit time, median of --runs runs. The sweep (bench.py's points: width 1024 at
batches 32 to 4096, widths 64 to 2048 at batch 256) is time per sample and achieved GFLOP/s of
one epoch after a warm-up, for polynn, Keras and the hand-written loop at each point.
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
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402 (the benchmark's own folder, put on the path just above)
import workloads  # noqa: E402

ENGINES = {
    "torch": ["polynn-torch", "keras-torch", "hand-torch"],
    "tensorflow": ["polynn-tensorflow", "keras-tensorflow", "hand-tensorflow-step", "hand-tensorflow-epoch"],
}
SWEEP_WORKLOADS = {"torch": ["polynn-torch", "keras-torch", "hand-torch"],
                   "tensorflow": ["polynn-tensorflow", "keras-tensorflow", "hand-tensorflow-epoch"]}
# What polynn is set against on each engine (the blog table's ratios).
KERAS = {"torch": "keras-torch", "tensorflow": "keras-tensorflow"}
HAND = {"torch": "hand-torch", "tensorflow": "hand-tensorflow-epoch"}
QUICK_BLOG_SAMPLES = 640
QUICK_SWEEP = ((16, 32), (32, 32))  # (width, batch)
GPU_SWEEP_FLOPS = 2e12  # a point's arithmetic on the GPU; bench.py's 2e11 would take milliseconds there


def engine_of(workload: str) -> str:
    return next(engine for engine, names in ENGINES.items() if workload in names)


def device_spelling(workload: str, device: str) -> str:
    """`device` ("gpu" or "cpu") as `workload` takes it: polynn's compile(device=...) on its backend,
    torch.device's name, or TensorFlow's device scope."""
    engine = engine_of(workload)
    if engine == "torch":
        return "cuda" if device == "gpu" else "cpu"
    if workload.startswith("polynn-"):
        return device
    return "/GPU:0" if device == "gpu" else "/CPU:0"


# ---- worker side (runs inside the measured process) -----------------------------------------


def _worker(engine: str, device: str, jobs: list[dict]) -> dict:
    import resource

    name = _device_name(engine, device)
    report = {"device_name": name, "results": []}
    for job in jobs:
        if name is None:
            # TensorFlow would place the ops on the CPU without a word (soft placement): refuse instead.
            report["results"].append({"error": f"no GPU visible to {engine}"})
            continue
        try:
            report["results"].append({"fit": _run_job(workloads, job, device)})
        except Exception as error:  # one failing run (an absent device, say) is reported, the rest still run
            traceback.print_exc()
            report["results"].append({"error": f"{type(error).__name__}: {error}"[:500]})
    report["versions"] = {name: getattr(sys.modules.get(name), "__version__", None)
                          for name in ("torch", "tensorflow", "keras", "polynn") if name in sys.modules}
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


def _run_job(workloads, job: dict, device: str) -> float:
    if job["width"]:
        x, y = workloads.sweep_data(job["width"], job["samples"])
        units = workloads.sweep_units(job["width"])
    else:
        x, y = workloads.blog_data()
        x, y = x[: job["samples"]], y[: job["samples"]]
        units = workloads.BLOG_UNITS
    run = workloads.WORKLOADS[job["workload"]]
    where = device_spelling(job["workload"], device)
    if job["warmup"]:
        run(x[: job["batch"] * 2], y[: job["batch"] * 2], units, 1, job["batch"], device=where)
    return run(x, y, units, job["epochs"], job["batch"], device=where)


def _device_name(engine: str, device: str) -> str | None:
    """The model of the device `engine` computes on: the first GPU it sees (None: it sees none),
    or the processor."""
    if device == "cpu":
        return bench._cpu_name()
    if engine == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.get_device_name(0)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return str(tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name))


# ---- parent side ------------------------------------------------------------------------------


def _launch(engine: str, device: str, jobs: list[dict], timeout: float) -> dict:
    """Run `jobs` in one new process; its report, or an error for every job when the process failed."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--device", device,
            "--jobs", json.dumps(jobs)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=bench._WORKER_ENV)
    except subprocess.TimeoutExpired:
        return {"results": [{"error": f"timed out after {timeout:g} s"}] * len(jobs)}
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return {"results": [{"error": last[:500]}] * len(jobs)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(args) -> list[dict]:
    """Every run of the benchmark: the blog workloads (`runs` times each), then the sweep's points."""
    runs = []
    blog_samples = QUICK_BLOG_SAMPLES if args.quick else workloads.BLOG_SAMPLES
    for engine, names in ENGINES.items():
        for name in names:
            for _ in range(args.runs):
                runs.append({"part": "blog", "engine": engine, "workload": name, "width": 0,
                             "samples": blog_samples, "batch": 32, "epochs": args.epochs, "warmup": False})
    if args.no_sweep:
        return runs
    if args.quick:
        points = list(QUICK_SWEEP)
    else:
        points = [(1024, b) for b in bench.SWEEP_BATCHES] + [(w, 256) for w in bench.SWEEP_WIDTHS if w != 1024]
    for engine, names in SWEEP_WORKLOADS.items():
        for width, batch in points:
            samples = _sweep_samples(width, batch, args)
            for name in names:
                runs.append({"part": "sweep", "engine": engine, "workload": name, "width": width,
                             "samples": samples, "batch": batch, "epochs": 1, "warmup": True})
    return runs


def _sweep_samples(width: int, batch: int, args) -> int:
    if args.quick:
        return batch * 4
    target = GPU_SWEEP_FLOPS if args.device == "gpu" else 2e11
    return max(batch * 16, min(65536, int(target / workloads.sweep_flops_per_sample(width)) // batch * batch))


def measure(args) -> dict:
    runs = plan(args)
    if args.quick:
        # One process per engine: the script's check, not a measurement.
        for engine in ENGINES:
            mine = [r for r in runs if r["engine"] == engine]
            print(f"{engine}: {len(mine)} runs in one process ...", file=sys.stderr, flush=True)
            report = _launch(engine, args.device, mine, args.timeout)
            for r, result in zip(mine, report["results"]):
                r.update(result, device_name=report.get("device_name"), versions=report.get("versions"))
    else:
        for r in runs:
            print(f"{r['workload']} {r['part']} width {r['width']} batch {r['batch']} ...", file=sys.stderr,
                  flush=True)
            report = _launch(r["engine"], args.device, [r], args.timeout)
            r.update(report["results"][0], device_name=report.get("device_name"), versions=report.get("versions"))
    return _report(runs, args)


def _report(runs: list[dict], args) -> dict:
    devices, versions = {}, {}
    for r in runs:
        if r.get("device_name") or r["engine"] not in devices:
            devices[r["engine"]] = r.get("device_name") or "no device found"
        versions.update({k: v for k, v in (r.get("versions") or {}).items() if v})
    report = {"device": args.device, "quick": args.quick, "runs": args.runs, "epochs": args.epochs,
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "processor": bench._cpu_name(), "cores": os.cpu_count()},
              "devices": devices, "versions": versions, "blog": {}, "sweep": {}}
    for engine, names in ENGINES.items():
        for name in names:
            mine = [r for r in runs if r["part"] == "blog" and r["workload"] == name]
            errors = [r["error"] for r in mine if "error" in r]
            entry = {"engine": engine, "samples": mine[0]["samples"] if mine else None}
            if errors:
                entry["error"] = errors[0]
            elif mine:
                entry.update(fit_median=statistics.median(r["fit"] for r in mine), fit_runs=[r["fit"] for r in mine])
            report["blog"][name] = entry
    for r in runs:
        if r["part"] != "sweep":
            continue
        point = report["sweep"].setdefault(f"{r['engine']}/w{r['width']}/b{r['batch']}",
                                           {"engine": r["engine"], "width": r["width"], "batch": r["batch"],
                                            "samples": r["samples"], "workloads": {}})
        if "error" in r:
            point["workloads"][r["workload"]] = {"error": r["error"]}
            continue
        flops = workloads.sweep_flops_per_sample(r["width"]) * r["samples"]
        point["workloads"][r["workload"]] = {"fit": r["fit"], "us_per_sample": r["fit"] / r["samples"] * 1e6,
                                             "gflops": flops / r["fit"] / 1e9}
    return report


def table(report: dict) -> str:
    where = ", ".join(f"{engine} on {name}" for engine, name in report["devices"].items()) or "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in sorted(report["versions"].items()))
    lines = [f"Device: {report['device']} ({where}); {versions}",
             f"Blog example, {report['epochs']} epoch(s), batch 32, median of {report['runs']} run(s)"
             + (" (--quick: tiny sizes, not a measurement)" if report["quick"] else ""), "",
             "| workload | fit (s) | vs Keras same engine | vs hand-written |", "|---|---|---|---|"]
    blog = report["blog"]

    def fit(name):
        return blog.get(name, {}).get("fit_median")

    for name, entry in blog.items():
        if "error" in entry:
            lines.append(f"| {name} | error: {entry['error']} | | |")
            continue
        vs_keras = vs_hand = ""
        if name.startswith("polynn-"):
            engine = entry["engine"]
            r = bench._ratio(entry["fit_median"], fit(KERAS[engine]))
            vs_keras = "" if r is None else f"{r:.2f}x"
            r = bench._ratio(entry["fit_median"], fit(HAND[engine]))
            vs_hand = "" if r is None else f"{r:.2f}x"
        lines.append(f"| {name} | {entry['fit_median']:.3f} | {vs_keras} | {vs_hand} |")
    if report["sweep"]:
        lines += ["", "Sweep: us a sample (GFLOP/s)", "", "| point | polynn | Keras | hand-written | polynn vs Keras | "
                  "polynn vs hand |", "|---|---|---|---|---|---|"]
        for key, point in report["sweep"].items():
            engine = point["engine"]
            cells, times = [], []
            for name in (f"polynn-{engine}", KERAS[engine], HAND[engine]):
                w = point["workloads"].get(name, {})
                if "error" in w:
                    cells.append(f"error: {w['error'][:120]}")
                    times.append(None)
                elif w:
                    cells.append(f"{w['us_per_sample']:.3g} ({w['gflops']:.3g})")
                    times.append(w["us_per_sample"])
                else:
                    cells.append("")
                    times.append(None)
            ratios = [bench._ratio(times[0], t) for t in times[1:]]
            lines.append(f"| {key} | {' | '.join(cells)} | "
                         + " | ".join("" if r is None else f"{r:.2f}x" for r in ratios) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one process per engine: checks the script")
    parser.add_argument("--runs", type=int, default=None, help="runs of each blog workload (default 3; --quick 1)")
    parser.add_argument("--epochs", type=int, default=None, help="blog epochs (default 10; --quick 1)")
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each process may take")
    parser.add_argument("--out", help="the JSON file (default benchmarks/results_gpu.json; --quick: none)")
    parser.add_argument("--worker", choices=tuple(ENGINES), help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.device, json.loads(args.jobs))))
        return 0
    args.runs = args.runs or (1 if args.quick else 3)
    args.epochs = args.epochs or (1 if args.quick else 10)
    start = time.perf_counter()
    report = measure(args)
    report["seconds"] = time.perf_counter() - start
    print(table(report))
    out = args.out or (None if args.quick else str(HERE / "results_gpu.json"))
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
