"""examples/blog.py --backend jax prints the Keras-style log, with the NumPy reference's numbers."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("jax")

BLOG = pathlib.Path(__file__).resolve().parents[2] / "blog.py"


def _run(backend, *options):
    done = subprocess.run([sys.executable, str(BLOG), "--backend", backend, "--seed", "3", *options],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _numbers(log):
    """Every metric value the log prints, in order (the step timings left out)."""
    return re.findall(r"(?:loss|accuracy): (\d+\.\d+)", log)


@pytest.mark.slow  # the full-size blog run
def test_blog_example_prints_the_keras_style_log_with_the_reference_numbers():
    log = _run("jax", "--dtype", "float64")
    lines = log.splitlines()
    assert lines[0] == "Epoch 1/2" and "Epoch 2/2" in lines
    epoch_line = re.compile(r"^313/313 ━{20} \d+m?s \d+[mu]?s/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} "
                            r"- val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}$")
    assert sum(bool(epoch_line.match(line)) for line in lines) == 2, log
    assert lines[-1].endswith("(backend jax, float64)")
    # float64 agrees with the reference to 1e-9, far below the 4 decimals printed.
    assert _numbers(log) == _numbers(_run("numpy", "--dtype", "float64"))
