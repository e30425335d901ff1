"""benchmarks/bench.py's convnet and LSTM tables run end to end (--quick) and report every workload's row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["polynn-numpy", "polynn-tensorflow", "polynn-torch", "keras-tensorflow", "keras-torch",
         "hand-tensorflow", "hand-torch"]


@pytest.mark.slow  # 14 processes that import TensorFlow, torch or Keras and train a few steps
def test_layer_benchmark_runs_quick(tmp_path):
    for name in ("torch", "tensorflow", "keras"):
        pytest.importorskip(name)
    out = tmp_path / "layers.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--models", "convnet", "lstm",
                           "--quick", "--runs", "1", "--no-sweep", "--no-scaling", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["blog"] == {} and set(report["layers"]) == {"convnet", "lstm"}

    for model, part in report["layers"].items():
        assert part["steps_per_epoch"] == 2 and part["epochs"] == 2
        assert part["samples"] == 2 * part["batch"]
        assert list(part["workloads"]) == NAMES
        for name, entry in part["workloads"].items():
            assert "error" not in entry, (model, name, entry)
            # One run: its step time is the second epoch's over its two steps, within the fit.
            (step,) = entry["step_ms_runs"]
            assert 0 < step == entry["step_ms_median"] and 2 * step / 1e3 < entry["fit_median"]
            assert entry["first_epoch_median"] < entry["fit_median"] < entry["wall_median"]
            assert f"| {name} | {step:.1f} |" in proc.stdout
        assert f"{model}: " in proc.stdout

    targets = {t["target"]: t for t in report["targets"]}
    assert len(targets) == 8  # two overhead ratios and two hand-written ratios a model; no blog targets
    for name, t in targets.items():
        if t["value"] is None:
            # Only an overhead ratio is left out: where Keras is no slower than the hand-written loop.
            model, engine = name.split(":")[0], name.split("polynn-")[1].split(" ")[0]
            steps = report["layers"][model]["workloads"]
            assert "overhead" in name and t["holds"] is None
            assert steps[f"keras-{engine}"]["step_ms_median"] <= steps[f"hand-{engine}"]["step_ms_median"]
        else:
            assert isinstance(t["value"], float) and t["holds"] == (t["value"] <= t["limit"])
    lstm = report["layers"]["lstm"]["workloads"]
    ratio = targets["lstm: polynn-torch / hand-torch (a step)"]["value"]
    assert ratio == pytest.approx(lstm["polynn-torch"]["step_ms_median"] / lstm["hand-torch"]["step_ms_median"])
