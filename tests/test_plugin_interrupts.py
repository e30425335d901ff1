"""Plugin loading against interrupts and BaseExceptions (issue 22, item 8): a KeyboardInterrupt during
loading reaches the caller, nothing of that load is kept, and the next use loads again; a plugin raising
SystemExit, GeneratorExit or another BaseException is a recorded failure, withdrawn, and never ends
the program or keeps the other plugins from loading."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from typing import ClassVar

import numpy as np
import pluggy
import pytest
from test_plugins import numpy_still_works

import polynn
from polynn import _registry, errors, hookimpl, plugins
from polynn.activations import Activation
from polynn.layers import Dense
from polynn.models import Sequential

FIRST_PARTY = {"numpy", "tensorflow", "torch"}
NOTES = sys.version_info >= (3, 11)  # exceptions carry notes from Python 3.11




def backend_names():
    return {entry.name for entry in plugins.backend_entries()}


def compile_numpy():
    Sequential([Dense(1, input_dim=3)]).compile(optimizer="sgd", loss="mse", backend="numpy")


def notes(error):
    return "\n".join(getattr(error, "__notes__", []))


def all_loaded_cleanly(*extra_backends):
    """The next use after an interrupt: everything loads, nothing is reported failed, NumPy trains."""
    assert numpy_still_works()
    assert FIRST_PARTY | set(extra_backends) <= backend_names()
    assert plugins.failures() == []


# _once(error) raises `error` the first time the plugin's code reaches it, as a Ctrl-C landing there would.
ONCE = """
import pathlib

_marker = pathlib.Path(__file__).with_suffix(".raised")


def _once(error):
    if not _marker.exists():
        _marker.write_text("")
        raise error
"""


def backend_hook(*names):
    registrations = "".join(f"    register({name!r}, lambda: None, engine='numpy')\n" for name in names)
    return f"""
from polynn import hookimpl


@hookimpl
def polynn_register_backends(register):
{registrations}"""


# ---- KeyboardInterrupt: reaches the caller; the next use loads again ------------------------------------


def test_an_interrupt_at_a_plugins_import_reaches_the_caller_and_the_next_use_loads_again(install_plugin):
    install_plugin("polynn-flaky", "flaky", "polynn_flaky_plugin",
                   ONCE + "_once(KeyboardInterrupt())\n" + backend_hook("flaky_backend"), version="1.5")
    with pytest.raises(KeyboardInterrupt) as info:
        compile_numpy()
    # the interruption, as it was, naming the plugin that was loading: failures() does not load again
    (failure,) = plugins.failures()
    assert failure.plugin == "flaky" and failure.distribution == "polynn-flaky 1.5"
    assert isinstance(failure.error, KeyboardInterrupt)
    assert str(failure) == ("loading the plugins was interrupted (KeyboardInterrupt) at plugin 'flaky' "
                            "(polynn-flaky 1.5), importing it; nothing of that load was kept, and the next use of "
                            "a backend or component loads the plugins again")
    if NOTES:
        assert str(failure) in notes(info.value) and "POLYNN_DISABLE_PLUGINS=flaky" in notes(info.value)
    all_loaded_cleanly("flaky_backend")


def test_a_plugin_interrupting_every_import_is_named_and_leaves_the_registry_consistent(install_plugin, monkeypatch):
    install_plugin("polynn-stuck", "stuck", "polynn_stuck_plugin", "raise KeyboardInterrupt\n")
    for _ in range(2):  # indistinguishable from the user's Ctrl-C: each use reaches it again
        with pytest.raises(KeyboardInterrupt) as info:
            compile_numpy()
        if NOTES:
            assert "at plugin 'stuck'" in notes(info.value) and "POLYNN_DISABLE_PLUGINS=stuck" in notes(info.value)
        (failure,) = plugins.failures()
        assert failure.plugin == "stuck" and failure.stage == "importing it"
        # nothing of the interrupted load is held: no plugin, backend or plugin spec
        assert plugins._state.pm.get_plugins() == set() and plugins._state.backends == {}
    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", "stuck")
    all_loaded_cleanly()


INTERRUPTED_BACKENDS_HOOK = ONCE + """
from polynn import hookimpl


@hookimpl
def polynn_register_backends(register):
    register("half_a", lambda: None, engine="numpy")
    _once(KeyboardInterrupt())
    register("half_b", lambda: None, engine="numpy")
"""


def test_an_interrupt_in_a_backends_hook_keeps_nothing_and_the_next_use_registers_all(install_plugin):
    install_plugin("polynn-half", "half", "polynn_half_plugin", INTERRUPTED_BACKENDS_HOOK)
    with pytest.raises(KeyboardInterrupt):
        plugins.backend_entries()
    (failure,) = plugins.failures()
    assert failure.plugin == "half" and failure.stage == "in its polynn_register_backends hook"
    assert plugins._state.backends == {}
    # registered once, not refused as registered twice
    all_loaded_cleanly("half_a", "half_b")


INTERRUPTED_COMPONENTS_HOOK = ONCE + """
import dataclasses
from typing import ClassVar

from polynn import hookimpl
from polynn.activations import Activation


@dataclasses.dataclass(frozen=True)
class First(Activation):
    name: ClassVar[str] = "interrupted_first"

    def call(self, x):
        return x


@dataclasses.dataclass(frozen=True)
class Second(First):
    name: ClassVar[str] = "interrupted_second"


@hookimpl
def polynn_register_components(register):
    register(First)
    _once(KeyboardInterrupt())
    register(Second)
"""


def test_an_interrupt_in_a_components_hook_withdraws_its_specs_and_the_next_use_registers_them(install_plugin):
    install_plugin("polynn-comp", "comp", "polynn_comp_plugin", INTERRUPTED_COMPONENTS_HOOK)
    with pytest.raises(KeyboardInterrupt):
        Dense(1, activation="interrupted_first")
    assert _registry.find("activation", "interrupted_first") is None
    layer = Dense(1, input_dim=3, activation="interrupted_second")  # a name unknown: plugins load again
    assert layer.activation.name == "interrupted_second"
    all_loaded_cleanly()


def _interrupt_once(function):
    """`function`, raising KeyboardInterrupt instead of running the first time it is called."""
    calls = []

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return wrapper


def _numpy_hook_interrupted(monkeypatch):
    import polynn_numpy

    # wraps() carries pluggy's hookimpl marker, so the wrapper is the hook pluggy registers
    monkeypatch.setattr(polynn_numpy, "polynn_register_backends",
                        _interrupt_once(polynn_numpy.polynn_register_backends))


def _import_interrupted(monkeypatch):
    real = importlib.import_module
    interrupted = _interrupt_once(real)
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: interrupted(name, *a) if name == "polynn_numpy" else real(name, *a))


INJECTED = {
    # the old loader marked itself loaded first, then read POLYNN_DISABLE_PLUGINS
    "before-registering": lambda mp: mp.setattr(plugins, "_block_disabled", _interrupt_once(plugins._block_disabled)),
    "importing-numpy": _import_interrupted,
    "registering-numpy": lambda mp: mp.setattr(pluggy.PluginManager, "check_pending",
                                               _interrupt_once(pluggy.PluginManager.check_pending)),
    "finding-entry-points": lambda mp: mp.setattr(importlib.metadata, "entry_points",
                                                  _interrupt_once(importlib.metadata.entry_points)),
    "before-the-hooks": lambda mp: mp.setattr(plugins, "_call_hooks", _interrupt_once(plugins._call_hooks)),
    "numpy-backends-hook": _numpy_hook_interrupted,
}


WHERE = {
    "before-registering": "while reading POLYNN_DISABLE_PLUGINS",
    "importing-numpy": f"at plugin 'numpy' (polynn {polynn.__version__}), importing it",
    "registering-numpy": f"at plugin 'numpy' (polynn {polynn.__version__}), validating its hooks",
    "finding-entry-points": "while finding the installed plugins",
    "before-the-hooks": "while calling the plugins' hooks",
    "numpy-backends-hook": f"at plugin 'numpy' (polynn {polynn.__version__}), in its polynn_register_backends hook",
}


@pytest.mark.parametrize("point", INJECTED)
def test_an_interrupt_anywhere_in_loading_leaves_polynn_able_to_load_again(fresh_plugins, monkeypatch, point):
    INJECTED[point](monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        compile_numpy()
    (failure,) = plugins.failures()
    assert isinstance(failure.error, KeyboardInterrupt)
    # what was loading when the interrupt came, as the record names it
    assert f"interrupted (KeyboardInterrupt) {WHERE[point]};" in str(failure)
    all_loaded_cleanly()


def test_a_thread_waiting_while_the_load_is_interrupted_loads_everything(fresh_plugins, monkeypatch):
    seen: dict = {}
    waiter = threading.Thread(target=lambda: seen.update(names=backend_names()))
    real = plugins._call_hooks

    def interrupted_while_another_waits(names):
        if not waiter.is_alive() and "names" not in seen:
            waiter.start()
            time.sleep(0.2)  # the other thread now waits for the loader's lock
            raise KeyboardInterrupt
        return real(names)

    monkeypatch.setattr(plugins, "_call_hooks", interrupted_while_another_waits)
    with pytest.raises(KeyboardInterrupt):
        plugins.load()
    waiter.join(timeout=60)
    assert not waiter.is_alive(), "the loader's lock was kept after the interrupt"
    assert FIRST_PARTY <= seen["names"] and plugins.failures() == []


def test_an_interrupt_in_a_backends_load_keeps_nothing(fresh_plugins):
    from polynn_numpy.backend import NumpyBackend

    class Late(NumpyBackend):
        name = "late"

    calls = []

    def load():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return Late()

    class Plugin:
        @hookimpl
        def polynn_register_backends(self, register):
            register("late", load, engine="numpy")

    plugins.register_plugin(Plugin(), "inline")
    with pytest.raises(KeyboardInterrupt):
        plugins.get_backend("late")
    entry = {e.name: e for e in plugins.backend_entries()}["late"]
    assert entry.instance is None and entry.error is None
    assert isinstance(plugins.get_backend("late"), Late) and plugins.failures() == []


@dataclasses.dataclass(frozen=True)
class Registered(Activation):
    name: ClassVar[str] = "registered_at_run_time"

    def call(self, x):
        return x


def test_an_interrupted_register_plugin_keeps_nothing_and_can_be_repeated(fresh_plugins):
    calls = []

    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(Registered)

        @hookimpl
        def polynn_register_backends(self, register):
            register("inline_backend", lambda: None, engine="numpy")
            calls.append(1)
            if len(calls) == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plugins.register_plugin(Plugin(), "inline")
    assert not plugins._state.pm.has_plugin("inline")
    assert "inline_backend" not in backend_names() and _registry.find("activation", "registered_at_run_time") is None
    plugins.register_plugin(Plugin(), "inline")
    assert "inline_backend" in backend_names() and _registry.find("activation", "registered_at_run_time") is Registered
    assert plugins.failures() == []


# ---- SystemExit, GeneratorExit and other BaseExceptions: the plugin's failure, withdrawn ----------------

RAISED = {
    "SystemExit": "SystemExit(3)",
    "GeneratorExit": "GeneratorExit('closed')",
    "PluginAbort": "type('PluginAbort', (BaseException,), {})('aborted')",  # a BaseException of its own
}


@pytest.mark.parametrize("exception", RAISED)
def test_a_plugin_raising_a_base_exception_at_import_is_a_failure_and_the_program_goes_on(install_plugin, exception):
    install_plugin("polynn-bad", "bad", "polynn_bad_plugin", f"raise {RAISED[exception]}\n", version="2.0")
    install_plugin("polynn-good", "good", "polynn_good_plugin", backend_hook("good_backend"))
    with pytest.warns(RuntimeWarning, match="plugin 'bad'"):
        names = backend_names()
    assert FIRST_PARTY | {"good_backend"} <= names
    (failure,) = plugins.failures()
    assert failure.plugin == "bad" and failure.distribution == "polynn-bad 2.0" and failure.stage == "to import"
    assert type(failure.error).__name__ == exception and f"failed to import: {exception}" in str(failure)
    assert numpy_still_works()


@pytest.mark.parametrize("exception", RAISED)
def test_a_half_registered_backend_is_withdrawn_and_the_next_plugin_registers(install_plugin, exception):
    install_plugin("polynn-bad", "bad", "polynn_bad_plugin",
                   backend_hook("half_backend") + f"    raise {RAISED[exception]}\n")
    install_plugin("polynn-good", "good", "polynn_good_plugin", backend_hook("good_backend"))
    with pytest.warns(RuntimeWarning, match="plugin 'bad'"):
        names = backend_names()
    assert "half_backend" not in names and FIRST_PARTY | {"good_backend"} <= names
    (failure,) = plugins.failures()
    assert failure.withdrawn == ("half_backend",) and type(failure.error).__name__ == exception
    with pytest.raises(errors.PluginError, match="plugin 'bad' registered it, then failed, so it was withdrawn"):
        Sequential([Dense(1, input_dim=3)]).compile(optimizer="sgd", loss="mse", backend="half_backend")
    assert numpy_still_works()


def components_raising(exception):
    return f"""
import dataclasses
from typing import ClassVar

from polynn import hookimpl
from polynn.activations import Activation


@dataclasses.dataclass(frozen=True)
class Half(Activation):
    name: ClassVar[str] = "half_registered"

    def call(self, x):
        return x


@hookimpl
def polynn_register_components(register):
    register(Half)
    raise {RAISED[exception]}
"""


GOOD_COMPONENT = """
import dataclasses
from typing import ClassVar

from polynn import hookimpl
from polynn.activations import Activation


@dataclasses.dataclass(frozen=True)
class Good(Activation):
    name: ClassVar[str] = "good_component"

    def call(self, x):
        return x


@hookimpl
def polynn_register_components(register):
    register(Good)
"""


@pytest.mark.parametrize("exception", RAISED)
def test_a_half_registered_component_is_withdrawn_and_the_next_plugin_registers(install_plugin, exception):
    install_plugin("polynn-bad", "bad", "polynn_bad_plugin", components_raising(exception))
    install_plugin("polynn-good", "good", "polynn_good_plugin", GOOD_COMPONENT)
    with pytest.warns(RuntimeWarning, match="plugin 'bad'"):
        plugins.load()
    assert _registry.find("activation", "half_registered") is None
    assert _registry.find("activation", "good_component") is not None
    (failure,) = plugins.failures()
    assert failure.stage == "in its polynn_register_components hook" and type(failure.error).__name__ == exception
    with pytest.raises(errors.UnknownComponentError):
        Dense(1, activation="half_registered")


@pytest.mark.parametrize("exception", RAISED)
def test_a_backends_load_raising_a_base_exception_is_a_plugin_error(fresh_plugins, exception):
    error = eval(RAISED[exception])

    def load():
        raise error

    class Plugin:
        @hookimpl
        def polynn_register_backends(self, register):
            register("exiting", load, engine="numpy")

    plugins.register_plugin(Plugin(), "inline", "polynn-inline 1.0")
    for _ in range(2):  # kept: every use fails the same way
        with pytest.raises(errors.PluginError) as info:
            plugins.get_backend("exiting")
        assert str(info.value).startswith(
            f"backend 'exiting' from plugin 'inline' (polynn-inline 1.0) failed to load: {exception}")
        assert info.value.__cause__ is error


@pytest.mark.parametrize("exception", RAISED)
def test_register_plugin_with_a_hook_raising_a_base_exception_records_it(fresh_plugins, exception):
    class Plugin:
        @hookimpl
        def polynn_register_backends(self, register):
            register("inline_half", lambda: None, engine="numpy")
            raise eval(RAISED[exception])

    with pytest.warns(RuntimeWarning, match="plugin 'inline'"):
        plugins.register_plugin(Plugin(), "inline")
    (failure,) = plugins.failures()
    assert failure.plugin == "inline" and failure.withdrawn == ("inline_half",)
    assert "inline_half" not in backend_names() and numpy_still_works()


def test_a_plugin_raising_system_exit_is_fatal_under_strict_plugins(install_plugin, monkeypatch):
    install_plugin("polynn-bad", "bad", "polynn_bad_plugin", "raise SystemExit(3)\n")
    monkeypatch.setenv("POLYNN_STRICT_PLUGINS", "1")
    for _ in range(2):  # and stays fatal
        with pytest.raises(errors.PluginError, match=r"'bad' \(polynn-bad 1.0\) failed to import: SystemExit") as info:
            compile_numpy()
    assert isinstance(info.value.__cause__, SystemExit)


def test_an_interrupted_load_leaves_no_warning_to_repeat(install_plugin):
    # The interrupt is the caller's exception; a RuntimeWarning about it would be noise.
    install_plugin("polynn-flaky", "flaky", "polynn_flaky_plugin", ONCE + "_once(KeyboardInterrupt())\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(KeyboardInterrupt):
            plugins.load()
        plugins.load()
    assert plugins._state.pm.has_plugin("flaky") and plugins.failures() == []


# ---- a real SIGINT, at points spread over the load, then a retry in the same process -------------------

CHILD = textwrap.dedent("""
    import json, os, signal, sys, threading, time

    import numpy as np
    import polynn
    from polynn import plugins
    from polynn.layers import Dense

    delay = float(sys.argv[1])
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)) if delay >= 0 else None
    landed, took = "before the load", None
    try:
        if timer:
            timer.start()
        landed = "in the load"
        start = time.perf_counter()
        plugins.load()
        took = time.perf_counter() - start
        landed = "after the load"
        if timer:
            timer.join()
            time.sleep(0.05)  # the handler runs at the main thread's next bytecode
    except KeyboardInterrupt:
        pass
    if timer:
        timer.join()
    plugins.load()  # the retry
    model = polynn.Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="sgd", loss="mse", backend="numpy", seed=0)
    loss = model.fit(np.ones((4, 3)), np.zeros((4, 1)), verbose=0).history["loss"][0]
    print(json.dumps({"landed": landed, "took": took, "loss": loss,
                      "names": sorted(e.name for e in plugins.backend_entries()),
                      "failures": [str(f) for f in plugins.failures()]}))
    """)


@pytest.mark.slow
def test_a_real_sigint_during_loading_then_a_retry_in_the_same_process(tmp_path):
    repo = pathlib.Path(polynn.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "backends")])}
    for name in ("POLYNN_DISABLE_PLUGINS", "POLYNN_STRICT_PLUGINS", "POLYNN_BACKEND"):
        env.pop(name, None)

    def run(delay):
        done = subprocess.run([sys.executable, "-c", CHILD, str(delay)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.splitlines()[-1])

    reference = run(-1)  # uninterrupted: what every retry must give, and how long a load takes
    assert FIRST_PARTY <= set(reference["names"]) and reference["failures"] == []
    trials, landed, deadline = 24, [], time.monotonic() + 20
    for i in range(trials):
        if time.monotonic() > deadline:
            break
        outcome = run(1.3 * reference["took"] * (i + 0.5) / trials)
        landed.append(outcome["landed"])
        assert (outcome["names"], outcome["failures"], outcome["loss"]) == (
            reference["names"], [], reference["loss"]), outcome
    assert "in the load" in landed, landed


# ---- the last unguarded calls into plugin code ---------------------------------------------------


def test_the_kit_reports_a_backend_that_exits_as_that_cases_error():
    """A backend calling sys.exit() inside a case ended the kit's whole run (it caught Exception only)."""
    from polynn.conformance import runner
    from polynn.conformance._case import Case

    calls = []

    def scenario(backend, dtype):
        calls.append(backend)
        if len(calls) > 1:  # the reference ran first; this is the backend under test
            raise SystemExit(3)
        return {"value": np.zeros(1)}

    result = runner.run_case(Case("test.backend_exits", "test", scenario, lambda dtype: {}), "numpy", "float64")
    assert result.status == "error" and "SystemExit: 3" in result.message


def test_an_engine_under_a_missing_package_is_not_installed():
    """find_spec of a dotted name imports its parents: ModuleNotFoundError reached the caller raw."""
    entry = plugins.BackendEntry(name="dotted", load=lambda: None, engine="no_such_package_xyz.engine",
                                 install="pip install no-such-package", plugin="dotted", distribution="none")
    assert entry.engine_installed() is False


def test_a_backend_whose_name_raises_is_the_plugins_error():
    from polynn.backend import Backend

    class NamelessBackend(Backend):
        @property
        def name(self):
            raise RuntimeError("no name today")

        def compile(self, plan):
            raise AssertionError("never compiled")

    entry = plugins.BackendEntry(name="nameless", load=lambda: None, engine="", install="", plugin="nameless",
                                 distribution="nameless-dist")
    with pytest.raises(errors.PluginError, match=r"backend 'nameless' from plugin 'nameless'.*RuntimeError: no name"):
        plugins._check_loaded(entry, NamelessBackend())
