"""benchmarks/gpu.py runs end to end on the CPU (--device cpu --quick) and reports every engine's rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOG = {"torch": ["polynn-torch", "keras-torch", "hand-torch"],
        "tensorflow": ["polynn-tensorflow", "keras-tensorflow", "hand-tensorflow-step", "hand-tensorflow-epoch"]}
SWEEP = {"torch": ["polynn-torch", "keras-torch", "hand-torch"],
         "tensorflow": ["polynn-tensorflow", "keras-tensorflow", "hand-tensorflow-epoch"]}


@pytest.mark.slow  # two processes that import torch, TensorFlow and Keras and train 19 small fits
def test_gpu_benchmark_runs_on_the_cpu(tmp_path):
    for name in ("torch", "tensorflow", "keras"):
        pytest.importorskip(name)
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["quick"] is True

    # Each engine names the device it ran on: here the processor, as bench.py names it.
    processor = report["machine"]["processor"]
    assert report["devices"] == {"torch": processor, "tensorflow": processor}
    assert processor in proc.stdout

    for engine, names in BLOG.items():
        for name in names:
            entry = report["blog"][name]
            assert "error" not in entry, (name, entry)
            assert entry["engine"] == engine and entry["fit_median"] > 0
            assert f"| {name} | {entry['fit_median']:.3f} |" in proc.stdout

    for engine, names in SWEEP.items():
        mine = [point for point in report["sweep"].values() if point["engine"] == engine]
        assert len(mine) >= 2, sorted(report["sweep"])
        for point in mine:
            for name in names:
                result = point["workloads"][name]
                assert "error" not in result, (name, result)
                assert result["us_per_sample"] > 0 and result["gflops"] > 0
                # The rate is the point's arithmetic over the fit time it reports.
                assert result["us_per_sample"] == pytest.approx(result["fit"] / point["samples"] * 1e6)
