"""Benchmark: the conformance kit's float32 verdict over many seeds, with correct and wrong backends.

    python benchmarks/kit_float32.py --seeds 24            # collect, then print the table
    python benchmarks/kit_float32.py --seeds 24 --no-collect

Each seed re-runs the cases below (the blog cases, the whole-model scenarios, recovery) with the
kit's shared streams seeded differently (initial weights, batch order, dropout): on the NumPy
reference in float64 and float32, on the backends under test in float32, and on copies of the NumPy
backend with a small wrong arithmetic injected. The observations are kept under --cache, and the
kit's criterion (polynn.conformance.tolerances.float32_verdict) judges each float32 run against
the float64 reference. A correct backend must pass at every seed, an injected error must fail at
every seed. This is a benchmark, not a test: it asserts nothing, it prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np

HERE = Path(__file__).resolve().parent
CASES = ["blog", "blog_dropout", "scenario.*", "recovery.*"]
BACKENDS = ["numpy", "torch", "tensorflow"]


# ---- copies of the NumPy backend with a wrong arithmetic --------------------------------------

def _injected_rules():
    """name -> function(rule) returning the NumPy optimizer rule with the error in it."""
    def longer_step(rule, factor=1e-3):
        # Every update 0.1% longer: a learning rate or a bias correction slightly wrong.
        def wrong(spec, w, g, slots, s, t0, t1):
            before = w.copy()
            rule(spec, w, g, slots, s, t0, t1)
            w += (w - before) * w.dtype.type(factor)
        return wrong

    def epsilon_x10(rule):
        # epsilon 1e-6 instead of 1e-7 (torch's default is 1e-8, Keras's 1e-7: a real porting slip).
        def wrong(spec, w, g, slots, s, t0, t1):
            eps = getattr(spec, "epsilon", None)
            rule(dataclasses.replace(spec, epsilon=eps * 10) if eps else spec, w, g, slots, s, t0, t1)
        return wrong

    def gradient_bias(rule, size=1e-3):
        # A wrong derivative term: every gradient off by 0.1% of its root mean square, a fixed pattern.
        def wrong(spec, w, g, slots, s, t0, t1):
            signs = np.where(np.random.RandomState(len(g)).random_sample(len(g)) < 0.5, -1.0, 1.0)
            rms = float(np.sqrt(np.mean(np.square(g, dtype=np.float64))))
            rule(spec, w, g + (size * rms * signs).astype(g.dtype), slots, s, t0, t1)
        return wrong

    return {"longer_step_1e-3": longer_step, "epsilon_x10": epsilon_x10, "gradient_bias_1e-3": gradient_bias}


def register_injected() -> list[str]:
    from polynn import hookimpl, plugins
    from polynn_numpy.backend import NumpyBackend

    names = []
    for label, inject in _injected_rules().items():
        name = f"numpy_{label}"

        class Injected(NumpyBackend):
            def compile(self, plan, _inject=inject):
                runtime = super().compile(plan)
                runtime.update = _inject(runtime.update)
                return runtime

        Injected.name = name

        class Plugin:
            @hookimpl
            def polynn_register_backends(self, register, _name=name, _cls=Injected):
                register(_name, _cls, engine="numpy", install="polynn")

        plugins.register_plugin(Plugin(), f"kit-bench-{name}")
        names.append(name)
    return names


# ---- collecting the observations ------------------------------------------------------------

def _path(cache: Path, seed: int, case: str, backend: str, dtype: str) -> Path:
    return cache / f"seed{seed}" / f"{case}--{backend}--{dtype}.npz"


def collect(cache: Path, seeds: list[int], backends: list[str], patterns: list[str]) -> None:
    import warnings

    from polynn.conformance import _harness, all_cases

    injected = register_injected()
    runs = [("numpy", "float64"), ("numpy", "float32"), *((b, "float32") for b in backends if b != "numpy"),
            *((name, "float32") for name in injected)]
    from polynn.conformance.runner import FORKING_KINDS

    cases = all_cases(patterns)
    for seed in seeds:
        started = time.perf_counter()
        for case in cases:
            # The reference's nudged float32 runs, for the cases whose budget takes them (runner.run_case).
            nudges = range(1, _harness.NUDGES + 1) if case.kind in FORKING_KINDS else range(0)
            for backend, dtype, nudge in [*((b, d, 0) for b, d in runs), *(("numpy", "float32", k) for k in nudges)]:
                label = backend if nudge == 0 else f"numpy-nudge{nudge}"
                path = _path(cache, seed, case.name, label, dtype)
                if path.exists():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with _harness.seeded(seed), _harness.nudged(nudge), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    observed = case.scenario(backend, dtype)
                np.savez(path, **{k: np.asarray(v, dtype=np.float64) for k, v in observed.items()})
        print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)


# ---- judging them -------------------------------------------------------------------------------

def _load(cache: Path, seed: int, case: str, backend: str, dtype: str) -> dict | None:
    path = _path(cache, seed, case, backend, dtype)
    return dict(np.load(path)) if path.exists() else None


def judge(cache: Path, seeds: list[int], backends: list[str], patterns: list[str]) -> dict:
    """Per backend (and injected error): seeds whose kit run passed, and per checked observation
    the worst ratio deviation / budget over the seeds, with its deviation and budget."""
    from polynn.conformance import _harness, all_cases
    from polynn.conformance._compare import compare, compare_float32
    from polynn.conformance.runner import FORKING_KINDS

    names = backends + [f"numpy_{label}" for label in _injected_rules()]
    table: dict = {name: {"seeds": 0, "passed": 0, "passed_before": 0, "failed_cases": {},
                           "worst": {}} for name in names}
    for seed in seeds:
        for name in names:
            outcome, before, complete = True, True, True
            for case in all_cases(patterns):
                r64 = _load(cache, seed, case.name, "numpy", "float64")
                r32 = _load(cache, seed, case.name, "numpy", "float32")
                got = _load(cache, seed, case.name, name, "float32")
                if r64 is None or r32 is None or got is None:
                    complete = False
                    continue
                tolerances = case.tolerances("float32")
                nudged = ([_load(cache, seed, case.name, f"numpy-nudge{k}", "float32")
                           for k in range(1, _harness.NUDGES + 1)] if case.kind in FORKING_KINDS else [])
                if any(run is None for run in nudged):
                    complete = False
                    continue
                for key, expected in r64.items():
                    tolerance = tolerances.get(key)
                    if tolerance is None:
                        continue
                    check = compare_float32(key, got.get(key), expected, r32[key], tolerance,
                                            nudged32=[run[key] for run in cast(list, nudged)])
                    budget = check.tolerance
                    # The worst element's share of its budget.
                    a, r = got[key].astype(np.float64), expected.astype(np.float64)
                    allowed = budget.atol + budget.rtol * np.abs(r)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        share = np.where(allowed > 0, np.abs(a - r) / allowed, np.where(a == r, 0.0, np.inf))
                    worst = float(share.max()) if share.size else 0.0
                    slot = f"{case.name}:{key}"
                    held = table[name]["worst"].get(slot)
                    if held is None or worst > held["share"]:
                        table[name]["worst"][slot] = {"share": worst, "seed": seed, "deviation": check.worst_abs,
                                                      "reference_deviation": check.reference_deviation,
                                                      "atol": budget.atol, "rtol": budget.rtol}
                    # Before: the float32 run held to the tolerance against the reference's float32 run.
                    before = before and compare(key, got.get(key), r32[key], tolerance).passed
                    if not check.passed:
                        outcome = False
                        failed = table[name]["failed_cases"].setdefault(case.name, [])
                        if seed not in failed:
                            failed.append(seed)
            if complete:
                table[name]["seeds"] += 1
                table[name]["passed"] += outcome
                table[name]["passed_before"] += before
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=24, help="seeds 0 .. N-1 (default 24)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--cache", default=str(HERE / ".kit_float32"), help="where the observations are kept")
    parser.add_argument("--no-collect", action="store_true", help="judge the observations already kept")
    parser.add_argument("--json", help="write the table here too")
    args = parser.parse_args()
    seeds, backends, cache = list(range(args.seeds)), args.backends.split(","), Path(args.cache)
    if not args.no_collect:
        collect(cache, seeds, backends, CASES)
    table = judge(cache, seeds, backends, CASES)
    for name, row in table.items():
        correct = not name.startswith("numpy_")
        verdict = "passed" if correct else "caught (failed)"
        count = row["passed"] if correct else row["seeds"] - row["passed"]
        before = row["passed_before"] if correct else row["seeds"] - row["passed_before"]
        print(f"{name} float32: {verdict} at {count} of {row['seeds']} seeds "
              f"(against the float32 reference, as before: {before})")
        worst = sorted(row["worst"].items(), key=lambda item: -item[1]["share"])[:3 if correct else 0]
        for slot, w in worst:
            print(f"    worst {slot}: {w['deviation']:.2g} of a budget atol {w['atol']:.2g} rtol {w['rtol']:.2g} "
                  f"(reference's own float32 deviation {w['reference_deviation']:.2g}; seed {w['seed']}), "
                  f"{w['share']:.2f} of it")
        if not correct:
            caught = {case: len(s) for case, s in row["failed_cases"].items()}
            print(f"    cases failing it (seeds): {caught}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1, default=float))
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
