"""bench.py's convnet and LSTM tables: each workload in processes of its own, a step's time, targets, table.

A step's time is taken from the epochs after the first (the first pays tracing and compiling on
TensorFlow and Keras): the median of those epochs' times over the steps of an epoch, then the
median over --runs runs. The targets are the blog model's, set on a step's time:

- polynn on TensorFlow and on torch at most 0.25x Keras 3's overhead on the same engine, where an
  overhead is a step's time beyond the hand-written loop's on that engine (not judged where Keras
  is no slower than the hand-written loop);
- polynn at most 1.25x the hand-written loop on the same engine.

NumPy has neither a Keras backend nor a hand-written loop of these models here: its row is its
step time alone.
"""

from __future__ import annotations

import math
import os
import statistics

import layer_workloads

MODELS = ("convnet", "lstm")
NAMES = ["polynn-numpy", "polynn-tensorflow", "polynn-torch", "keras-tensorflow", "keras-torch",
         "hand-tensorflow", "hand-torch"]
# (samples, epochs): 8 convnet steps of 128 and 16 LSTM steps of 64 an epoch, 4 epochs.
SIZES = {"convnet": (1024, 4), "lstm": (1024, 4)}
KERAS = {"tensorflow": "keras-tensorflow", "torch": "keras-torch"}
HAND = {"tensorflow": "hand-tensorflow", "torch": "hand-torch"}
OVERHEAD_LIMIT = 0.25
HAND_LIMIT = 1.25


def sizes(model: str, quick: bool) -> tuple[int, int, int]:
    """(samples, epochs, batch) of `model`'s runs; quick: two steps an epoch, two epochs."""
    batch = layer_workloads.BATCH[model]
    samples, epochs = (2 * batch, 2) if quick else SIZES[model]
    return samples, epochs, batch


def run(model: str, names: list[str], runs: int, quick: bool, measure) -> dict:
    """Every workload of `names` on `model`, `runs` processes each, in rounds; `measure(argv)` runs
    one worker process and returns its JSON result (bench.py's _measure)."""
    samples, epochs, batch = sizes(model, quick)
    steps = math.ceil(samples / batch)
    part = {"samples": samples, "epochs": epochs, "batch": batch, "steps_per_epoch": steps, "runs": runs,
            "load_average_before": os.getloadavg()[0], "workloads": {}}
    # Round after round of every workload, so that the machine's drift weighs on each alike.
    rounds = [{name: measure(["--worker", name, "--model", model, "--samples", str(samples), "--epochs", str(epochs),
                              "--batch", str(batch)]) for name in names} for _ in range(runs)]
    part["load_average_after"] = os.getloadavg()[0]
    for name in names:
        results = [r[name] for r in rounds]
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            part["workloads"][name] = {"error": errors[0]}
            continue
        step_ms = [statistics.median(r["epochs"][1:] or r["epochs"]) / steps * 1e3 for r in results]
        part["workloads"][name] = {
            "step_ms_median": statistics.median(step_ms),
            "step_ms_runs": step_ms,
            "first_epoch_median": statistics.median(r["epochs"][0] for r in results),
            "fit_median": statistics.median(r["fit"] for r in results),
            "wall_median": statistics.median(r["wall"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        }
    return part


def _step(part: dict, name: str) -> float | None:
    return part["workloads"].get(name, {}).get("step_ms_median")


def _over(a, b):
    return None if a is None or b is None else a / b


def overhead_ratio(part: dict, engine: str) -> float | None:
    """polynn's overhead over Keras's on `engine`, each a step's time beyond the hand-written loop's;
    None where a time is missing or Keras is no slower than the hand-written loop (no overhead to
    set polynn's against: the hand-written target still judges polynn)."""
    hand = _step(part, HAND[engine])
    polynn, keras = _step(part, f"polynn-{engine}"), _step(part, KERAS[engine])
    if None in (hand, polynn, keras) or keras <= hand:
        return None
    return (polynn - hand) / (keras - hand)


def targets(model: str, part: dict) -> list[dict]:
    t = []
    for engine in ("tensorflow", "torch"):
        value = overhead_ratio(part, engine)
        t.append({"target": f"{model}: polynn-{engine} overhead / {KERAS[engine]} overhead (beyond {HAND[engine]})",
                  "value": value, "limit": OVERHEAD_LIMIT, "holds": None if value is None else value <= OVERHEAD_LIMIT})
    for engine in ("tensorflow", "torch"):
        value = _over(_step(part, f"polynn-{engine}"), _step(part, HAND[engine]))
        t.append({"target": f"{model}: polynn-{engine} / {HAND[engine]} (a step)", "value": value,
                  "limit": HAND_LIMIT, "holds": None if value is None else value <= HAND_LIMIT})
    return t


def table(model: str, part: dict) -> str:
    what = {"convnet": "Keras's MNIST convnet, 28x28x1 images",
            "lstm": f"Embedding {layer_workloads.VOCABULARY}x{layer_workloads.EMBEDDING}, "
                    f"LSTM {layer_workloads.LSTM_UNITS}, {layer_workloads.LENGTH} tokens"}[model]
    lines = [f"{model}: {what}; batch {part['batch']}, {part['steps_per_epoch']} steps an epoch, "
             f"{part['epochs']} epochs; a step's time from the epochs after the first, median of {part['runs']} runs "
             f"(load average {part['load_average_before']:.1f} before, {part['load_average_after']:.1f} after)", "",
             "| workload | ms a step | first epoch (s) | fit (s) | process wall (s) | peak RSS (MB) "
             "| vs Keras same engine | overhead vs Keras's | vs hand-written |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in part["workloads"].items():
        if "error" in entry:
            lines.append(f"| {name} | error: {entry['error']} | | | | | | | |")
            continue
        vs_keras = overhead = vs_hand = ""
        engine = name.split("-", 1)[1]
        if name.startswith("polynn-") and engine in KERAS:
            r = _over(entry["step_ms_median"], _step(part, KERAS[engine]))
            vs_keras = "" if r is None else f"{r:.2f}x"
            r = overhead_ratio(part, engine)
            overhead = "" if r is None else f"{r:.2f}x"
            r = _over(entry["step_ms_median"], _step(part, HAND[engine]))
            vs_hand = "" if r is None else f"{r:.2f}x"
        lines.append(f"| {name} | {entry['step_ms_median']:.1f} | {entry['first_epoch_median']:.2f} | "
                     f"{entry['fit_median']:.2f} | {entry['wall_median']:.2f} | {entry['peak_rss_mb']:.0f} | "
                     f"{vs_keras} | {overhead} | {vs_hand} |")
    return "\n".join(lines)
