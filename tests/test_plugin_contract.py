"""Plugins that break the contract (a bad backend object, bad registration arguments, bad specs) are
refused with a PluginError naming the plugin, what was wrong, the value and what is accepted."""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar

import numpy as np
import pluggy
import pytest

from polynn import _registry, hookimpl
from polynn._spec import Component
from polynn.activations import Activation, ReLU
from polynn.backend import Runtime, StepResult
from polynn.errors import ImmutableSpecError, InvalidArgumentError, PluginError
from polynn.initializers import Initializer
from polynn.layers import Dense
from polynn.losses import Loss
from polynn.metrics import Metric
from polynn.models import Sequential
from polynn.optimizers import Optimizer
from polynn.schedules import LearningRateSchedule
from polynn_numpy.backend import NumpyBackend
from polynn_numpy.runtime import NumpyRuntime

DIST = "polynn-inline 1.0"


def hook_failures(plugins, hook_owner, name="inline"):
    """Register `hook_owner` as plugin `name` and return the failures its hooks caused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plugins.register_plugin(hook_owner, name, DIST)
    return [f for f in plugins.failures() if f.plugin == name]


def backends_plugin(*registrations):
    """A plugin whose backend hook calls register(*args, **kwargs) for each (args, kwargs)."""

    class Plugin:
        @hookimpl
        def polynn_register_backends(self, register):
            for args, kwargs in registrations:
                register(*args, **kwargs)

    return Plugin()


# ---- what a backend's load() returns -----------------------------------------------------


class Renamed(NumpyBackend):
    name = "something_else"


def test_load_must_return_a_backend_instance(fresh_plugins):
    hook_failures(fresh_plugins, backends_plugin(
        (("nothing", lambda: None), {"engine": "numpy"}),
        (("a_class", lambda: NumpyBackend), {"engine": "numpy"})))
    with pytest.raises(PluginError) as info:
        fresh_plugins.get_backend("nothing")
    message = str(info.value)
    assert f"backend 'nothing' from plugin 'inline' ({DIST})" in message
    assert "returned builtins.NoneType" in message and "accepted: an instance of polynn.backend.Backend" in message
    # not kept: the next use fails the same way
    with pytest.raises(PluginError, match="returned builtins.NoneType"):
        fresh_plugins.get_backend("nothing")
    with pytest.raises(PluginError, match=r"returned the class polynn_numpy\.backend\.NumpyBackend, not an instance"):
        fresh_plugins.get_backend("a_class")


def test_load_must_return_a_backend_of_the_registered_name(fresh_plugins):
    hook_failures(fresh_plugins, backends_plugin((("renamed", Renamed), {"engine": "numpy"})))
    with pytest.raises(PluginError) as info:
        fresh_plugins.get_backend("renamed")
    message = str(info.value)
    assert f"backend 'renamed' from plugin 'inline' ({DIST})" in message
    assert "named 'something_else', not 'renamed'" in message


def test_backends_lists_a_bad_backend_with_its_error_and_the_others(fresh_plugins, monkeypatch, capsys):
    from polynn.cli import main

    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", "tensorflow,torch,jax,extras")
    hook_failures(fresh_plugins, backends_plugin(
        (("nothing", lambda: None), {"engine": "numpy"}), (("renamed", Renamed), {"engine": "numpy"})))
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith(" ")}
    assert " ok " in rows["numpy"]
    assert "load error: backend 'nothing' from plugin 'inline'" in rows["nothing"]
    assert "load error: backend 'renamed'" in rows["renamed"] and "'something_else'" in rows["renamed"]


# ---- the arguments of the backend hook's register() --------------------------------------


@pytest.mark.parametrize("args,kwargs,expected", [
    ((123, NumpyBackend), {"engine": "numpy"}, "invalid name 123; accepted: a non-empty string"),
    (("", NumpyBackend), {"engine": "numpy"}, "invalid name ''; accepted: a non-empty string"),
    (("bad", NumpyBackend), {}, "backend 'bad': no engine= argument; accepted (required): the engine's import name"),
    (("bad", NumpyBackend), {"engine": ""}, "invalid engine=''; accepted (required)"),
    (("bad", "polynn_numpy:NumpyBackend"), {"engine": "numpy"},
     "invalid load='polynn_numpy:NumpyBackend'; accepted: a no-argument callable"),
    (("bad", NumpyBackend), {"engine": "numpy", "install": 3}, "invalid install=3; accepted: a string"),
    (("bad", NumpyBackend), {"engine": "numpy", "dtypes": "float32"},
     "invalid dtypes='float32'; accepted: a non-empty tuple of dtype names among float32, float64"),
    (("bad", NumpyBackend), {"engine": "numpy", "dtypes": ("float16",)},
     "invalid dtypes=('float16',) ('float16' unknown); accepted: dtype names among float32, float64"),
    (("bad", NumpyBackend), {"engine": "numpy", "dtypes": ()}, "invalid dtypes=()"),
    (("bad", NumpyBackend), {"engine": "numpy", "devices": "cpu"},
     "invalid devices='cpu'; accepted: a non-empty tuple of device names"),
    (("bad", NumpyBackend), {"engine": "numpy", "devices": ("cpu", 0)}, "invalid devices=('cpu', 0)"),
    (("bad", NumpyBackend), {"engine": "numpy", "flavour": "x"},
     "unknown argument(s) ['flavour']; accepted: register(name, load, *, engine, install, dtypes, devices, "
     "distributions)"),
    (("bad", NumpyBackend), {"engine": "numpy", "distributions": ("model_parallel",)},
     "invalid distributions=('model_parallel',); accepted: a tuple of names among data_parallel"),
    (("bad", NumpyBackend), {"engine": "numpy", "distributions": "data_parallel"},
     "invalid distributions='data_parallel'"),
], ids=["name-int", "name-empty", "no-engine", "engine-empty", "load-not-callable", "install-int", "dtypes-str",
        "dtype-unknown", "dtypes-empty", "devices-str", "device-int", "unknown-keyword", "distribution-unknown",
        "distributions-str"])
def test_backend_registration_arguments_are_checked(fresh_plugins, args, kwargs, expected):
    (failure,) = hook_failures(fresh_plugins, backends_plugin((args, kwargs)))
    assert isinstance(failure.error, PluginError)
    assert f"plugin 'inline' ({DIST})" in str(failure.error) and expected in str(failure.error)
    assert "bad" not in {e.name for e in fresh_plugins.backend_entries()}


def test_first_party_and_example_backends_register_without_failures(fresh_plugins):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        entries = {e.name: e for e in fresh_plugins.backend_entries()}
    assert fresh_plugins.failures() == []
    assert {"numpy", "tensorflow", "torch"} <= set(entries)
    assert entries["numpy"].dtypes == ("float32", "float64") and entries["numpy"].devices == ("cpu",)


# ---- register.implementation() -----------------------------------------------------------


def components_plugin(body):
    """A plugin whose component hook runs body(register)."""

    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            body(register)

    return Plugin()


def _identity(spec, x):
    return x


@pytest.mark.parametrize("args,expected", [
    (("numpy", "activaton", "snake"), "invalid kind='activaton'; accepted: one of layer, activation, loss, metric, "
                                      "optimizer, regularizer, constraint"),
    (("numpy", "initializer", "snake"), "invalid kind='initializer'"),
    (("", "activation", "snake"), "invalid backend=''; accepted: a backend name, a non-empty string"),
    ((None, "activation", "snake"), "invalid backend=None"),
    (("numpy", "activation", ""), "invalid name=''; accepted: the component's name, a non-empty string"),
    (("numpy", "activation", 7), "invalid name=7"),
], ids=["misspelled-kind", "core-kind", "empty-backend", "no-backend", "empty-name", "int-name"])
def test_implementation_arguments_are_checked(fresh_plugins, args, expected):
    (failure,) = hook_failures(fresh_plugins, components_plugin(
        lambda register: register.implementation(*args, (_identity, None))))
    message = str(failure.error)
    assert isinstance(failure.error, PluginError)
    assert f"plugin 'inline' ({DIST}) registered an implementation with {expected}" in message


def test_an_implementation_for_a_backend_not_installed_is_accepted(fresh_plugins):
    assert hook_failures(fresh_plugins, components_plugin(
        lambda register: register.implementation("not_installed_yet", "activation", "relu", _identity))) == []
    assert fresh_plugins.component_implementation("not_installed_yet", "activation", "relu") is _identity


def test_an_implementation_given_twice_names_both_distributions(fresh_plugins):
    def body(register):
        register.implementation("numpy", "activation", "inline_act", (_identity, None))

    assert hook_failures(fresh_plugins, components_plugin(body), name="first") == []
    (failure,) = hook_failures(fresh_plugins, components_plugin(body), name="second")
    assert str(failure.error) == (f"activation 'inline_act' for backend 'numpy' is implemented twice: "
                                  f"by plugin 'first' ({DIST}) and by plugin 'second' ({DIST})")


# ---- spec classes given to register() ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NoReduction(Loss):
    """l = mean(|p - y|), without the reduction field a loss needs."""
    name: ClassVar[str] = "inline_noreduction"


@dataclasses.dataclass(frozen=True)
class NoName(Activation):
    """A name was forgotten."""


class NotADataclass(Activation):
    name = "inline_notdataclass"


@dataclasses.dataclass
class NotFrozen(Activation):
    name: ClassVar[str] = "inline_notfrozen"


class Undecorated(ReLU):
    """Inherits ReLU's dataclass machinery without being a dataclass itself."""
    name = "inline_undecorated"


@dataclasses.dataclass(frozen=True)
class NameAsField(Activation):
    name: str = "inline_namefield"


@dataclasses.dataclass(frozen=True)
class NoLearningRate(Optimizer):
    name: ClassVar[str] = "inline_nolr"


@dataclasses.dataclass(frozen=True)
class NoCompute(Metric):
    name: ClassVar[str] = "inline_nocompute"


@dataclasses.dataclass(frozen=True)
class NoEvaluate(LearningRateSchedule):
    name: ClassVar[str] = "inline_noevaluate"


@dataclasses.dataclass(frozen=True)
class NoSample(Initializer):
    name: ClassVar[str] = "inline_nosample"


@dataclasses.dataclass(frozen=True)
class BadAliases(Activation):
    name: ClassVar[str] = "inline_badaliases"
    aliases: ClassVar[tuple] = ("ok", 3)


@dataclasses.dataclass(frozen=True)
class WrongBase(Component):
    kind: ClassVar[str] = "loss"
    name: ClassVar[str] = "inline_wrongbase"
    reduction: str = "sum_over_batch_size"


@dataclasses.dataclass(frozen=True)
class UnknownKind(Component):
    kind: ClassVar[str] = "widget"
    name: ClassVar[str] = "inline_widget"


@pytest.mark.parametrize("spec_class,problem,accepted", [
    ("snake", "spec class 'snake' (str) is not a component class",
     "a frozen dataclass subclassing one of polynn's component bases"),
    (NoName, "(test_plugin_contract.NoName) has name None", 'name: ClassVar[str] = "my_name"'),
    (Activation, "(polynn.activations.Activation) is not itself a frozen dataclass",
     "@dataclasses.dataclass(frozen=True)"),
    (NotADataclass, "is not itself a frozen dataclass", "@dataclasses.dataclass(frozen=True)"),
    (Undecorated, "is not itself a frozen dataclass", "@dataclasses.dataclass(frozen=True)"),
    (NotFrozen, "is a dataclass that is not frozen", "@dataclasses.dataclass(frozen=True)"),
    (NameAsField, "declares name or kind as a dataclass field", "name: ClassVar[str]"),
    (NoReduction, "is a loss without a 'reduction' field",
     'a loss declares reduction: str = "sum_over_batch_size"'),
    (NoLearningRate, "is an optimizer without a 'learning_rate' field", "learning_rate: float"),
    (NoCompute, "is a metric that does not define compute()", "polynn.metrics.Metric.compute()"),
    (NoEvaluate, "is a schedule that does not define evaluate() or rates()",
     "polynn.schedules.LearningRateSchedule.evaluate() or polynn.schedules.LearningRateSchedule.rates()"),
    (NoSample, "is an initializer that does not define sample()", "polynn.initializers.Initializer.sample()"),
    (BadAliases, "has aliases ('ok', 3)", "a tuple of non-empty strings"),
    (WrongBase, "has kind 'loss' but does not subclass polynn.losses.Loss", "subclasses polynn.losses.Loss"),
    (UnknownKind, "has kind 'widget'", "one of layer, activation, loss"),
], ids=lambda value: getattr(value, "__name__", None) if isinstance(value, type) else None)
def test_spec_classes_are_checked_at_registration(fresh_plugins, spec_class, problem, accepted):
    (failure,) = hook_failures(fresh_plugins, components_plugin(lambda register: register(spec_class)))
    message = str(failure.error)
    assert isinstance(failure.error, PluginError)
    assert message.startswith("plugin 'inline': spec class ") and problem in message
    assert f"; accepted: {accepted}" in message or accepted in message.split("; accepted: ")[1]
    assert f"plugin 'inline' ({DIST}) failed in its polynn_register_components hook" in str(failure)
    name = getattr(spec_class, "name", None)
    if isinstance(name, str):
        assert all(name not in _registry.names(kind) for kind in _registry.KINDS)


def test_a_loss_with_a_reduction_field_registers_and_trains(fresh_plugins):
    @dataclasses.dataclass(frozen=True)
    class MeanAbsolute(Loss):
        """l = mean(|p - y|)."""
        name: ClassVar[str] = "inline_mae"
        reduction: str = "sum_over_batch_size"

    def body(register):
        register(MeanAbsolute)
        register.implementation("numpy", "loss", "inline_mae", (
            lambda spec, y, p: np.abs(p - y).mean(-1), lambda spec, y, p, g: g[:, None] * np.sign(p - y) / p.shape[-1]))

    assert hook_failures(fresh_plugins, components_plugin(body)) == []
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="sgd", loss="inline_mae", backend="numpy", seed=0)
    history = model.fit(np.ones((4, 3)), np.zeros((4, 1)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# ---- a hook that raises registers nothing --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HalfActivation(Activation):
    name: ClassVar[str] = "inline_half"


def test_a_hook_that_raises_leaves_nothing_registered(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(HalfActivation)
            register.implementation("numpy", "activation", "inline_half", (_identity, None))
            raise ValueError("boom after registering a spec")

        @hookimpl
        def polynn_register_backends(self, register):
            register("inline_half_backend", NumpyBackend, engine="numpy")
            raise ValueError("boom after registering a backend")

    failures = hook_failures(fresh_plugins, Plugin())
    assert [f.stage for f in failures] == ["in its polynn_register_components hook",
                                           "in its polynn_register_backends hook"]
    assert "inline_half" not in _registry.names("activation")
    assert fresh_plugins.component_implementation("numpy", "activation", "inline_half") is None
    assert "inline_half_backend" not in {e.name for e in fresh_plugins.backend_entries()}
    assert failures[1].withdrawn == ("inline_half_backend",)
    assert str(failures[1]).endswith("boom after registering a backend (its backends 'inline_half_backend' "
                                     "were withdrawn)")
    # the registry was restored, not emptied: polynn's own and the other plugins' entries stay
    assert "relu" in _registry.names("activation") and "numpy" in {e.name for e in fresh_plugins.backend_entries()}
    # and the plugin, fixed, can register the same names afterwards
    fixed = components_plugin(lambda register: register(HalfActivation))
    assert hook_failures(fresh_plugins, fixed, name="fixed") == []
    assert _registry.source_of(HalfActivation) == "plugin 'fixed'"


# ---- messages that point at the cause --------------------------------------------------------


HOOKS = "polynn_register_backends(register), polynn_register_components(register)"


def test_a_misspelled_hook_lists_the_hooks_polynn_defines(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_backend(self, register):
            pass

    (failure,) = hook_failures(fresh_plugins, Plugin())
    message = str(failure)
    assert "failed validation of its hooks" in message and "unknown hook 'polynn_register_backend'" in message
    assert "(did you mean 'polynn_register_backends'?)" in message
    assert f"accepted: the hooks polynn defines, with these argument names: {HOOKS}" in message


def test_every_unknown_hook_is_named_and_an_optional_one_is_accepted(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_component(self, register):
            pass

        @hookimpl
        def polynn_make_coffee(self, register):
            pass

        @hookimpl(optionalhook=True)
        def polynn_from_a_later_polynn(self, register):
            pass

    plugin = Plugin()
    (failure,) = hook_failures(fresh_plugins, plugin)
    message = str(failure)
    assert ("unknown hook 'polynn_make_coffee'; unknown hook 'polynn_register_component' "
            "(did you mean 'polynn_register_components'?); accepted:") in message
    assert "polynn_from_a_later_polynn" not in message
    assert isinstance(failure.error.__cause__, pluggy.PluginValidationError)
    assert failure.error.__cause__.plugin is plugin
    # the plugin was withdrawn whole: pluggy holds none of its hooks
    assert not fresh_plugins._state.pm.is_registered(plugin)


def test_a_wrong_hook_argument_name_lists_the_hooks_and_their_argument(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_backends(self, reg):
            pass

    (failure,) = hook_failures(fresh_plugins, Plugin())
    message = str(failure)
    assert "polynn_register_backends(reg)" in message and "{'reg'}" in message and "\n" not in message
    assert f"with these argument names: {HOOKS}" in message


def test_a_backend_withdrawn_with_its_failed_hook_names_the_failure(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_backends(self, register):
            register("inline_fast", NumpyBackend, engine="numpy")
            raise RuntimeError("could not find the device")

    hook_failures(fresh_plugins, Plugin())
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(PluginError) as info:
        model.compile(optimizer="sgd", loss="mse", backend="inline_fast")
    message = str(info.value)
    assert message.startswith("backend 'inline_fast' is unavailable: plugin 'inline' registered it, then failed")
    assert f"plugin 'inline' ({DIST}) failed in its polynn_register_backends hook: RuntimeError: could not find " \
           "the device" in message
    assert "Available backends: " in message and "numpy" in message


@pytest.mark.parametrize("entry_point,distribution", [("fancy", "polynn-other"), ("other", "polynn-fancy")])
def test_a_backend_whose_plugin_failed_to_import_names_the_failure(install_plugin, fresh_plugins, entry_point,
                                                                   distribution):
    install_plugin(distribution, entry_point, "polynn_fancy_plugin", "import polynn_no_such_module_xyz\n")
    with pytest.warns(RuntimeWarning):
        fresh_plugins.backend_entries()
    with pytest.raises(PluginError) as info:
        fresh_plugins.get_backend("fancy")
    message = str(info.value)
    assert message.startswith("unknown backend 'fancy', probably because the plugin that would register it failed")
    assert f"plugin {entry_point!r} ({distribution} 1.0) failed to import: ModuleNotFoundError" in message


def test_an_unknown_backend_with_no_failed_plugin_is_still_unknown(fresh_plugins):
    from polynn.errors import UnknownBackendError

    with pytest.raises(UnknownBackendError, match="unknown backend 'nmupy'. Did you mean 'numpy'"):
        fresh_plugins.get_backend("nmupy")


# ---- what a backend's compile(plan) raises or returns ----------------------------------------


class IncompleteRuntime(Runtime):
    """Lacks every method but __init__: instantiating it raises TypeError."""

    def __init__(self, backend, plan):
        pass


class CompileFailures(NumpyBackend):
    """compile() does what the class attribute `outcome` says."""

    outcome = "abstract"

    def compile(self, plan):
        if self.outcome == "abstract":
            return IncompleteRuntime(self, plan)
        if self.outcome == "polynn-error":
            raise InvalidArgumentError("device", plan.device, "'cpu'", owner=f"backend {self.name!r}")
        return None


@pytest.fixture
def compile_failures(fresh_plugins):
    class Backend(CompileFailures):
        name = "inline_compile"

    hook_failures(fresh_plugins, backends_plugin((("inline_compile", Backend), {"engine": "numpy"})))
    return Backend


def test_a_runtime_missing_a_method_is_a_plugin_error_naming_the_backend(compile_failures):
    compile_failures.outcome = "abstract"
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(PluginError) as info:
        model.compile(optimizer="sgd", loss="mse", backend="inline_compile")
    message = str(info.value)
    assert message.startswith(f"backend 'inline_compile' from plugin 'inline' ({DIST}) failed to compile the "
                              f"model: TypeError: Can't instantiate abstract class IncompleteRuntime")
    assert "predict_steps" in message
    assert isinstance(info.value.__cause__, TypeError)


def test_a_polynn_error_from_compile_passes_unchanged(compile_failures):
    compile_failures.outcome = "polynn-error"
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(InvalidArgumentError, match=r"backend 'inline_compile': invalid device=None; accepted: 'cpu'"):
        model.compile(optimizer="sgd", loss="mse", backend="inline_compile")


def test_compile_must_return_a_runtime(compile_failures):
    compile_failures.outcome = "none"
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(PluginError, match=r"backend 'inline_compile' from plugin 'inline' \(polynn-inline 1.0\): "
                                          r"compile\(plan\) returned builtins.NoneType; accepted: an instance of "
                                          r"polynn.backend.Runtime"):
        model.compile(optimizer="sgd", loss="mse", backend="inline_compile")


# ---- what a runtime's train_steps and test_steps return --------------------------------------


class MiscountingRuntime(NumpyRuntime):
    """Spoils its StepResults as the class attribute `spoil` says."""

    spoil = None

    def _spoiled(self, result):
        losses, states = result
        if self.spoil == "one loss fewer":
            return StepResult(losses[:-1], states)
        if self.spoil == "a state fewer":
            return StepResult(losses, states[:-1])
        if self.spoil == "short state":
            return StepResult(losses, [state[:-1] for state in states])
        if self.spoil == "tuple of losses":
            return losses
        return result

    def train_steps(self, data, batches, masks, scalars):
        return self._spoiled(super().train_steps(data, batches, masks, scalars))

    def test_steps(self, data, batches):
        return self._spoiled(super().test_steps(data, batches))


@pytest.fixture
def miscounting(fresh_plugins):
    class Backend(NumpyBackend):
        name = "inline_miscount"

        def compile(self, plan):
            self.check_plan(plan)
            return MiscountingRuntime(self, plan)

    hook_failures(fresh_plugins, backends_plugin((("inline_miscount", Backend), {"engine": "numpy"})))
    model = Sequential([Dense(1, input_dim=3, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy", "auc"],
                  backend="inline_miscount", seed=0, steps_per_execution=8)
    x, y = np.ones((64, 3)), np.ones((64, 1))

    def run(spoil, action):
        MiscountingRuntime.spoil = spoil
        try:
            if action == "fit":
                return model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            return model.evaluate(x, y, batch_size=8, verbose=0)
        finally:
            MiscountingRuntime.spoil = None

    return run


@pytest.mark.parametrize("action,method", [("fit", "train_steps"), ("evaluate", "test_steps")])
@pytest.mark.parametrize("spoil,returned,accepted", [
    ("one loss fewer", "returned 7 losses for 8 steps", "one loss per step, an array of shape (8,)"),
    ("a state fewer", "returned 1 metric states for 2 metrics",
     "one state per metric, in the order of the plan's metrics (binary_accuracy, auc)"),
    ("short state", "returned a state of shape (1,) for metric 'accuracy' (binary_accuracy)",
     "a vector of the metric's state_size, shape (2,)"),
    ("tuple of losses", "returned numpy.ndarray", "a polynn.backend.StepResult(losses, metric_states)"),
])
def test_step_results_are_checked(miscounting, action, method, spoil, returned, accepted):
    with pytest.raises(PluginError) as info:
        miscounting(spoil, action)
    assert str(info.value) == (f"backend 'inline_miscount' from plugin 'inline' ({DIST}) {returned} from {method}; "
                               f"accepted: {accepted}")


def test_well_formed_step_results_pass(miscounting):
    history = miscounting(None, "fit")
    assert np.isfinite(history.history["loss"][0]) and 0 <= history.history["accuracy"][0] <= 1


def test_every_builtin_spec_class_passes_the_check_plugins_get():
    # register_spec skips the check for polynn's own classes at import; this holds them to it.
    builtins = [cls for kind in _registry.KINDS for cls in _registry.builtin_specs(kind)]
    assert len(builtins) > 80
    for cls in builtins:
        _registry.check_spec_class(cls, "polynn")


def test_restoring_the_registry_removes_only_what_was_added():
    dense = _registry.lookup("layer", "dense")
    state = _registry.snapshot()

    @dataclasses.dataclass(frozen=True)
    class Transient(Activation):
        name: ClassVar[str] = "transient_activation"

    _registry.register_spec(Transient, source="plugin 'transient'")
    tables = dict(_registry._BY_NAME)
    _registry.restore(state)
    assert all(_registry._BY_NAME[kind] is table for kind, table in tables.items())  # the same tables, changed in place
    assert "transient_activation" not in _registry._BY_NAME["activation"]
    assert Transient not in _registry._SOURCE
    assert _registry.lookup("layer", "dense") is dense


def test_a_plugin_spec_refuses_assignment_as_polynn_specs_do(fresh_plugins):
    @dataclasses.dataclass(frozen=True)
    class Scaled(Activation):
        name: ClassVar[str] = "scaled_for_assignment"
        scale: float = 2.0

    _registry.register_spec(Scaled, source="plugin 'inline'")
    try:
        with pytest.raises(ImmutableSpecError, match=r"scale=3.0 cannot be set; accepted: a new spec"):
            Scaled().scale = 3.0
    finally:
        _registry.forget_plugin_specs()


def test_a_plugin_spec_with_an_initvar_takes_it():
    @dataclasses.dataclass(frozen=True)
    class WithInitVar(Activation):
        name: ClassVar[str] = "with_initvar"
        factor: float = 1.0
        double: dataclasses.InitVar[bool] = False

        def __post_init__(self, double):
            if double:
                self._set("factor", 2 * self.factor)
            super().__post_init__()

    assert WithInitVar(factor=1.5, double=True).factor == 3.0
