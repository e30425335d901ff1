"""docs/plugins.md runs as written: its code blocks, saved as the files they name, make a backend on JAX
(polynn_myjax) and a component plugin (polynn_shrink) that pass the conformance kit on a sample of
cases. (The whole kit passes too, in both dtypes; it takes minutes, so it is not run here.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
# A block the walkthrough saves: its first line names the file; "(continued)" appends to it.
BLOCK = re.compile(r"```(?:python|toml)\n# (\S+\.(?:py|toml))( \(continued\)[^\n]*)?\n(.*?)```", re.S)
FILES = {"pyproject.toml", "polynn_myjax/__init__.py", "polynn_myjax/ops.py", "polynn_myjax/backend.py",
         "polynn_shrink/__init__.py"}

# A sample across the contract: the blog model, the ops with a kink or a tie, components of every
# kind written on polynn.ops, and the guide's own component (whose NumPy reference is its override).
CASES = {
    "float64": ("blog", "op.abs", "op.maximum", "op.clip", "op.power", "op.sort", "op.max", "activation.relu",
                "activation.soft_shrink", "loss.hinge", "metric.auc", "optimizer.adam", "regularizer.l1",
                "constraint.max_norm", "layer.dropout"),
    "float32": ("activation.soft_shrink", "op.clip", "loss.categorical_crossentropy"),
}

RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import polynn_myjax, polynn_shrink
    from polynn import conformance, plugins

    plugins.register_plugin(polynn_shrink, "shrink")
    plugins.register_plugin(polynn_myjax, "myjax")
    failures = [str(f) for f in plugins.failures() if f.plugin in ("shrink", "myjax")]
    assert not failures, failures
    # The NumPy override (section 5) against the shared call (section 4), on both kinks.
    numpy = plugins.get_backend("numpy")
    own = numpy.own_implementation("activation", "soft_shrink")
    shared = numpy.shared_implementation("activation", "soft_shrink")
    spec = polynn_shrink.SoftShrink(threshold=0.5)
    x = np.array([-1.0, -0.5, -0.25, 0.0, 0.5, 0.75])
    dy = np.arange(1.0, 7.0)
    agree = np.array_equal(own[0](spec, x), shared[0](spec, x)) and \\
        np.array_equal(own[1](spec, x, None, dy), shared[1](spec, x, None, dy))
    results = {}
    for dtype, patterns in json.loads(sys.argv[1]).items():
        report = conformance.run("myjax", dtype, tuple(patterns))
        results[dtype] = [[r.name, r.status, r.message] for r in report.results]
    print(json.dumps({"override_agrees": bool(agree), "own_is_override": own[0] is polynn_shrink._soft_shrink,
                      "results": results}))
""")


def _files() -> dict[str, str]:
    found: dict[str, str] = {}
    for path, continued, body in BLOCK.findall(GUIDE.read_text()):
        if continued:
            assert path in found, f"{path} is continued before it starts"
            found[path] += "\n\n" + body
        else:
            assert path not in found, f"{path} starts twice"
            found[path] = body
    return found


def test_the_walkthrough_names_its_files_and_registers_what_its_entry_point_says():
    files = _files()
    assert set(files) == FILES
    if tomllib is not None:
        project = tomllib.loads(files["pyproject.toml"])
        assert project["project"]["entry-points"]["polynn"] == {"myjax": "polynn_myjax"}
    assert '[project.entry-points.polynn]\nmyjax = "polynn_myjax"' in files["pyproject.toml"]
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")
    # The plugin module imports no engine: JAX comes in only through load().
    assert "import jax" not in files["polynn_myjax/__init__.py"]
    assert 'register("myjax"' in files["polynn_myjax/__init__.py"]


@pytest.mark.slow  # the whole kit on a JAX backend, which compiles every case's model
def test_the_walkthrough_backend_and_component_pass_the_kit(tmp_path):
    pytest.importorskip("jax")
    for path, text in _files().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    # A process of its own: the walkthrough switches JAX's 64-bit mode on for the whole process.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    done = subprocess.run([sys.executable, "-c", RUN, json.dumps(CASES)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["own_is_override"] and outcome["override_agrees"]
    for dtype, patterns in CASES.items():
        results = outcome["results"][dtype]
        names = [name for name, _, _ in results]
        for pattern in patterns:
            assert any(name == pattern or name.startswith(pattern + "(") for name in names), (dtype, pattern)
        failed = [f"{name}: {status} {message}" for name, status, message in results if status != "pass"]
        assert not failed, "\n".join(failed)
