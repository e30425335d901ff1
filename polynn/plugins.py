"""The plugin manager: loads polynn's own plugins by module name and third parties' through entry
points, guardedly, and keeps the backends.

A plugin that fails to import, whose hooks do not match the hookspecs, or that raises inside a
hook (SystemExit and other BaseExceptions included) is recorded as a failure naming the plugin and
its distribution; every other plugin keeps working. A KeyboardInterrupt is the user's: it undoes
the whole load and reaches the caller, and the next use loads again. POLYNN_STRICT_PLUGINS=1 makes
a failure raise PluginError instead, and POLYNN_DISABLE_PLUGINS=name,... skips the named plugins.
A plugin's component under a name one of polynn's own holds is no failure: polynn's keeps the name,
and the plugin's spec and implementations under it are left out, with a warning naming the plugin.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

from . import _registry, hookspecs
from ._version import __version__
from .errors import BackendNotInstalledError, PluginError, UnknownBackendError
from .hookspecs import COMPUTED_KINDS, DISTRIBUTIONS, DTYPES

if TYPE_CHECKING:
    from .backend import Backend

__all__ = ["BackendEntry", "PluginFailure", "backend_entries", "backends_implementing", "component_specs",
           "describe_backend", "get_backend",
           "failures", "load", "register_plugin", "component_implementation", "reset"]

ENTRY_POINT_GROUP = "polynn"

# polynn's first-party backends, registered by module name (as pytest's default_plugins), so a plain
# source tree on sys.path finds them without entry-point metadata. Each registers as the plugin
# named after its module without the "polynn_" prefix ("numpy"), the name POLYNN_DISABLE_PLUGINS
# takes. Importing one does not import its engine; a missing engine shows when the backend loads.
DEFAULT_PLUGINS = ("polynn_numpy", "polynn_tensorflow", "polynn_torch")


@dataclasses.dataclass
class PluginFailure:
    plugin: str
    distribution: str
    stage: str
    error: BaseException
    # backends the failed hook had registered before raising, withdrawn with the rest of its work
    withdrawn: tuple = ()

    def __str__(self) -> str:
        if isinstance(self.error, KeyboardInterrupt):
            what = " ".join(f"{type(self.error).__name__}: {self.error}".split()).rstrip(":")
            where = f"at plugin {self.plugin!r} ({self.distribution}), " if self.plugin else "while "
            return (f"loading the plugins was interrupted ({what}) {where}{self.stage}; nothing of that load was "
                    f"kept, and the next use of a backend or component loads the plugins again")
        text = (f"plugin {self.plugin!r} ({self.distribution}) failed {self.stage}: "
                f"{type(self.error).__name__}: {self.error}")
        if self.withdrawn:
            text += f" (its backends {', '.join(map(repr, self.withdrawn))} were withdrawn)"
        return text


@dataclasses.dataclass
class BackendEntry:
    name: str
    load: Callable[[], Any]
    engine: str
    install: str
    plugin: str
    distribution: str
    dtypes: tuple = ("float32", "float64")
    devices: tuple = ("cpu",)
    distributions: tuple = ()
    instance: Any = None
    error: BaseException | None = None

    def engine_installed(self) -> bool:
        if not self.engine:
            return True
        try:
            # A dotted name imports its parents, which may be missing or broken: not installed, then.
            return importlib.util.find_spec(self.engine) is not None
        except Exception:
            return False

    def engine_version(self) -> str | None:
        """The version of the distribution that provides the engine's package (tensorflow-cpu's for
        "tensorflow"), or None when none is installed."""
        package = self.engine.partition(".")[0]
        # One named like the package first; the metadata of an editable install may name no package.
        candidates = sorted(_packages_distributions().get(package, []),
                            key=lambda dist: _normal(dist) != _normal(package))
        for dist in (*candidates, package):
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                pass
        return None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    """Import name -> the distributions providing it, computed once: it reads every installed
    distribution's file list."""
    return importlib.metadata.packages_distributions()


class _State:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("polynn")
        self.pm.add_hookspecs(hookspecs)
        self.loaded = False
        self.backends: dict[str, BackendEntry] = {}
        self.failures: list[PluginFailure] = []
        self.implementations: dict[tuple[str, str, str], tuple[Any, str]] = {}
        # (backend, kind, name) -> the plugin whose implementation was left out with its spec, its
        # name being polynn's own component's (_ComponentRegistrar.settle)
        self.dropped: dict[tuple[str, str, str], str] = {}
        self.dists: dict[str, str] = {}
        self.fatal: PluginError | None = None
        self.blocked: set[str] = set()  # the names blocked because POLYNN_DISABLE_PLUGINS listed them
        self.lock = threading.RLock()
        # (plugin, distribution, stage) being loaded now, which an interrupt's record names
        self.loading: tuple[str, str, str] = ("", "", "")
        self.interrupted = False  # the last load was interrupted; failures() reports it as it was


_state = _State()


def _strict() -> bool:
    return os.environ.get("POLYNN_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


def _block_disabled() -> None:
    """Block the plugin names POLYNN_DISABLE_PLUGINS lists now (pluggy then refuses to register them),
    and unblock those it no longer lists; a plugin registered already stays, as its backends do."""
    raw = os.environ.get("POLYNN_DISABLE_PLUGINS", "")
    listed = {name.strip() for name in raw.split(",") if name.strip()}
    for name in _state.blocked - listed:
        _state.pm.unblock(name)
    _state.blocked = {name for name in listed if not _state.pm.has_plugin(name)}
    for name in _state.blocked:
        _state.pm.set_blocked(name)


def _fail(plugin: str, distribution: str, stage: str, error: BaseException, withdrawn: tuple = ()) -> None:
    failure = PluginFailure(plugin, distribution, stage, error, withdrawn)
    _state.failures.append(failure)
    if _strict():
        # kept, so every later use fails too instead of running on a half-loaded plugin set
        _state.fatal = PluginError(str(failure))
        raise _state.fatal from error
    warnings.warn(str(failure), RuntimeWarning, stacklevel=3)


def _distribution_label(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _register_module(plugin: Any, name: str, distribution: str) -> bool:
    _state.loading = (name, distribution, "validating its hooks")
    try:
        if _state.pm.register(plugin, name=name) is None:
            return False  # a name POLYNN_DISABLE_PLUGINS blocked
        try:
            _state.pm.check_pending()
        except pluggy.PluginValidationError as error:
            # read while the plugin is registered: which of its hooks no hookspec declares
            raise _hook_error(error, _unknown_hooks(error.plugin)) from error
    except BaseException as error:  # pluggy.PluginValidationError and friends; a plugin object's own code
        if _state.pm.is_registered(plugin):
            _state.pm.unregister(plugin)
        if isinstance(error, KeyboardInterrupt):
            raise
        if isinstance(error, pluggy.PluginValidationError):  # from register(): a hook's arguments
            error = _hook_error(error, [])
        _fail(name, distribution, "validation of its hooks", error)
        return False
    _state.dists[name] = distribution
    return True


def _hook_error(error: pluggy.PluginValidationError, unknown: list[str]) -> PluginError:
    """A plugin's wrong hooks on one line, with the hooks polynn defines (pluggy names only the
    wrong one), chained from pluggy's complaint: the `unknown` hook names, or else its text."""
    hooks = {hook: list(inspect.signature(getattr(hookspecs, hook)).parameters)
             for hook in dir(hookspecs) if hook.startswith("polynn_")}
    if unknown:
        # pluggy's own text names the plugin by its repr (a module's file path); the failure names it
        text = "; ".join(f"unknown hook {hook!r}{_did_you_mean(hook, hooks)}" for hook in unknown)
    else:
        text = " ".join(str(error).split())
    defined = ", ".join(f"{hook}({', '.join(arguments)})" for hook, arguments in sorted(hooks.items()))
    wrapped = PluginError(f"{text}; accepted: the hooks polynn defines, with these argument names: {defined}")
    wrapped.__cause__ = error
    return wrapped


def _did_you_mean(hook: str, hooks: dict[str, list[str]]) -> str:
    close = difflib.get_close_matches(hook, hooks, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_hooks(plugin: Any) -> list[str]:
    """The hooks `plugin` implements (not as optionalhook) that no hookspec declares, in name order."""
    return sorted({caller.name for caller in _state.pm.get_hookcallers(plugin) or ()
                   if not caller.has_spec()
                   and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())})


def _call_hooks(plugin_names: list[str]) -> None:
    for name in plugin_names:
        plugin = _state.pm.get_plugin(name)
        if plugin is None:
            continue
        distribution = _state.dists.get(name, "unknown distribution")
        components = _ComponentRegistrar(name, distribution)
        register: _ComponentRegistrar | _BackendRegistrar
        for hook_name, register in (
            ("polynn_register_components", components),
            ("polynn_register_backends", _BackendRegistrar(name, distribution)),
        ):
            # Each plugin's implementation is called on its own, so one failure names its plugin
            # and leaves the others registered.
            for impl in getattr(_state.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name != name:
                    continue
                # A hook that raises registers nothing: what it registered before raising is
                # withdrawn, so no half-registered plugin is left to fail later and elsewhere.
                # SystemExit and the like too: a plugin's sys.exit() must not end the user's program.
                backends, implementations = dict(_state.backends), dict(_state.implementations)
                specs, dropped = _registry.snapshot(), dict(_state.dropped)
                _state.loading = (name, distribution, f"in its {hook_name} hook")
                try:
                    impl.function(register=register)
                except BaseException as error:
                    withdrawn = tuple(n for n in _state.backends if n not in backends)
                    _state.backends, _state.implementations, _state.dropped = backends, implementations, dropped
                    _registry.restore(specs)
                    if isinstance(error, KeyboardInterrupt):
                        raise  # the user's, as far as anyone can tell: it ends the load
                    _fail(name, distribution, f"in its {hook_name} hook", error, withdrawn)
            if register is components:
                components.settle()


def _ensure_loaded() -> None:
    with _state.lock:  # released by the with-statement whatever interrupts the load
        if _state.fatal is not None:
            raise _state.fatal
        if _state.loaded:
            return
        # Loading is all or nothing: it starts afresh, whatever an interrupted load left (an
        # interrupt may land anywhere, in an undoing too), and is marked done only once it is.
        _clean_slate()
        try:
            _load_all()
        except BaseException as error:
            _abandon_load(error)
            raise
        _state.loaded = True


def _clean_slate() -> None:
    """The state before any plugin loaded (a failed or interrupted load's records included)."""
    pm = pluggy.PluginManager("polynn")
    pm.add_hookspecs(hookspecs)
    _state.pm = pm
    _state.backends, _state.implementations, _state.dists, _state.dropped = {}, {}, {}, {}
    _state.failures, _state.blocked = [], set()
    _state.loading, _state.interrupted = ("", "", ""), False
    _registry.forget_plugin_specs()


def _abandon_load(error: BaseException) -> None:
    """Undo a load that `error` ended; an interrupt is recorded, naming what was loading, and
    noted on the exception, so that a plugin raising KeyboardInterrupt each time can be found."""
    plugin, distribution, stage = _state.loading
    _clean_slate()
    if isinstance(error, KeyboardInterrupt):
        failure = PluginFailure(plugin, distribution, stage or "starting to load", error)
        _state.failures.append(failure)
        _state.interrupted = True
        hint = f"; POLYNN_DISABLE_PLUGINS={plugin} skips that plugin" if plugin else ""
        if hasattr(error, "add_note"):  # Python 3.11 and later
            error.add_note(f"polynn: {failure}{hint}")


def _load_all() -> None:
    _state.loading = ("", "", "reading POLYNN_DISABLE_PLUGINS")
    _block_disabled()
    names = []
    # polynn's own plugins first, so a third party reusing a first-party name is the one refused
    for module_name in DEFAULT_PLUGINS:
        name = _default_plugin_name(module_name)
        # checked before importing: a disabled plugin's module is never imported
        if _state.pm.is_blocked(name) or _state.pm.is_blocked(module_name):
            continue
        distribution = f"polynn {__version__}"
        _state.loading = (name, distribution, "importing it")
        try:
            module = importlib.import_module(module_name)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit included: a plugin does not end the program
            _fail(name, distribution, "to import", error)
            continue
        if _register_module(module, name, distribution):
            names.append(name)
    _state.loading = ("", "", "finding the installed plugins")
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        # An older polynn's metadata may still list its own backends as entry points: they are
        # registered above already, by module name.
        if _state.pm.is_blocked(ep.name) or _state.pm.has_plugin(ep.name) or ep.module in DEFAULT_PLUGINS:
            continue
        distribution = _distribution_label(ep)
        _state.loading = (ep.name, distribution, "importing it")
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            _fail(ep.name, distribution, "to import", error)
            continue
        if _register_module(module, ep.name, distribution):
            names.append(ep.name)
    _state.loading = ("", "", "calling the plugins' hooks")
    _call_hooks(names)


def _default_plugin_name(module_name: str) -> str:
    return module_name.removeprefix("polynn_")


def load() -> None:
    """Find and load every installed plugin now; later calls do nothing until reset()."""
    _ensure_loaded()


def register_plugin(plugin: Any, name: str, distribution: str = "registered at run time") -> None:
    """Register a plugin object directly (tests, notebooks), guarded like an installed one. An
    interrupt undoes the registration and reaches the caller, who may register it again."""
    with _state.lock:
        _ensure_loaded()
        _block_disabled()  # the variable as it is now, as for a plugin loaded now
        backends, implementations, dists = dict(_state.backends), dict(_state.implementations), dict(_state.dists)
        specs, dropped = _registry.snapshot(), dict(_state.dropped)
        try:
            if _register_module(plugin, name, distribution):
                _call_hooks([name])
        except BaseException:  # an interrupt, or POLYNN_STRICT_PLUGINS's PluginError: none of it is kept
            if _state.pm.is_registered(plugin):
                _state.pm.unregister(plugin)
            _state.backends, _state.implementations, _state.dists = backends, implementations, dists
            _state.dropped = dropped
            _registry.restore(specs)
            raise


class _BackendRegistrar:
    def __init__(self, plugin: str, distribution: str):
        self.plugin, self.distribution = plugin, distribution

    def __call__(self, name: Any = None, load: Any = None, *, engine: Any = None, install: Any = "",
                 dtypes: Any = ("float32", "float64"), devices: Any = ("cpu",), distributions: Any = (),
                 **extra: Any) -> None:
        where = f"plugin {self.plugin!r} ({self.distribution})"
        if extra:
            raise PluginError(f"{where} called register() with unknown argument(s) {sorted(extra)}; accepted: "
                              f"register(name, load, *, engine, install, dtypes, devices, distributions)")
        if not isinstance(name, str) or not name:
            raise PluginError(f"{where} registered a backend with invalid name {name!r}; accepted: a non-empty string")
        where = f"{where}, backend {name!r}"
        if not callable(load):
            raise PluginError(f"{where}: invalid load={load!r}; accepted: a no-argument callable returning "
                              f"the polynn.backend.Backend instance")
        if not isinstance(engine, str) or not engine:
            given = "no engine= argument" if engine is None else f"invalid engine={engine!r}"
            raise PluginError(f"{where}: {given}; accepted (required): the engine's import name, a non-empty "
                              f"string (for example 'torch'), which tells a missing engine from a broken plugin")
        if not isinstance(install, str):
            raise PluginError(f"{where}: invalid install={install!r}; accepted: a string naming what to pip install")
        dtypes = _strings(where, "dtypes", dtypes, f"a non-empty tuple of dtype names among {', '.join(DTYPES)}")
        unknown = [d for d in dtypes if d not in DTYPES]
        if unknown:
            raise PluginError(f"{where}: invalid dtypes={dtypes!r} ({', '.join(map(repr, unknown))} unknown); "
                              f"accepted: dtype names among {', '.join(DTYPES)}, the dtypes compile() accepts")
        devices = _strings(where, "devices", devices, "a non-empty tuple of device names such as ('cpu',)")
        distributions = tuple(distributions) if isinstance(distributions, (tuple, list)) else distributions
        if not isinstance(distributions, tuple) or any(d not in DISTRIBUTIONS for d in distributions):
            raise PluginError(f"{where}: invalid distributions={distributions!r}; accepted: a tuple of names among "
                              f"{', '.join(DISTRIBUTIONS)} (empty: trains in one process only)")
        held = _state.backends.get(name)
        if held is not None:
            raise PluginError(
                f"backend {name!r} is registered twice: by plugin {held.plugin!r} ({held.distribution}) "
                f"and by plugin {self.plugin!r} ({self.distribution})")
        _state.backends[name] = BackendEntry(name, load, engine, install or engine, self.plugin, self.distribution,
                                             dtypes, devices, distributions)


def _strings(where: str, argument: str, value: Any, accepted: str) -> tuple:
    """`value` as a tuple of non-empty strings; a lone string is refused, not split into characters."""
    items = None
    if not isinstance(value, (str, bytes)):
        try:
            items = tuple(value)
        except TypeError:
            pass
    if not items or not all(isinstance(item, str) and item for item in items):
        raise PluginError(f"{where}: invalid {argument}={value!r}; accepted: {accepted}")
    return items


class _ComponentRegistrar:
    def __init__(self, plugin: str, distribution: str):
        self.plugin, self.distribution = plugin, distribution
        self.label = f"plugin {plugin!r} ({distribution})"

    def __call__(self, spec_class: type[Any]) -> type[Any]:
        return _registry.register_spec(spec_class, source=f"plugin {self.plugin!r}", label=self.label)

    def implementation(self, backend: str, kind: str, name: str, impl: Any) -> None:
        where = f"{self.label} registered an implementation with"
        # A backend name nobody has registered is fine: its plugin may be installed later.
        if not isinstance(backend, str) or not backend:
            raise PluginError(f"{where} invalid backend={backend!r}; accepted: a backend name, a non-empty string")
        if kind not in COMPUTED_KINDS:
            raise PluginError(f"{where} invalid kind={kind!r}; accepted: one of {', '.join(COMPUTED_KINDS)} "
                              f"(the kinds a backend computes)")
        if not isinstance(name, str) or not name:
            raise PluginError(f"{where} invalid name={name!r}; accepted: the component's name, a non-empty string")
        key = (backend, kind, name.lower())
        if (kind, name.lower()) in self._lost():
            # written for the plugin's spec, which polynn's own spec of that name replaces
            _state.dropped[key] = self.label
            return
        held = _state.implementations.get(key)
        if held is not None:
            raise PluginError(
                f"{kind} {name!r} for backend {backend!r} is implemented twice: by {held[1]} "
                f"and by {self.label}")
        _state.implementations[key] = (impl, self.label)

    def _lost(self) -> dict[tuple[str, str], type[Any]]:
        """(kind, lower-case name) -> this plugin's spec class, for each name under which that spec
        is not registered because polynn's own spec holds the name: every key of a spec left out,
        the keys polynn's own took from a spec kept under its own name."""
        lost = {}
        for cls in _registry.yielded_by(self.label):
            keys = _registry.spec_keys(cls) if _registry.left_out(cls) else _registry.yielded(cls)
            lost.update({(cls.kind, key): cls for key in keys})
        return lost

    def settle(self) -> None:
        """Once the plugin's component hooks ran: leave out its implementations under the names its
        specs lost to polynn's own (also those registered before the spec), and say so, one warning
        per spec, naming the plugin."""
        lost = self._lost()
        for key in [k for k, (_, label) in _state.implementations.items() if label == self.label
                    and k[1:] in lost]:
            del _state.implementations[key]
            _state.dropped[key] = self.label
        for cls in _registry.yielded_by(self.label):
            backends = sorted({key[0] for key, label in _state.dropped.items()
                               if label == self.label and lost.get(key[1:]) is cls})
            warnings.warn(self._yielded_message(cls, backends), UserWarning, stacklevel=3)

    def _yielded_message(self, cls: type[Any], backends: list[str]) -> str:
        ours = _registry.yielded(cls)
        theirs = f"{cls.__module__}.{cls.__qualname__}"
        under = "that name" if _registry.left_out(cls) else "those names"
        ignored = (f", and so are the implementations the plugin registers under {under} (for backends "
                   f"{', '.join(map(repr, backends))})" if backends else "")
        if _registry.left_out(cls):
            own = ours[cls.name.lower()]
            public = f"{own.__module__}.{own.__qualname__}"
            return (f"{self.label}: polynn now provides {cls.kind} {cls.name!r} itself ({public}): the plugin's "
                    f"spec under that name ({theirs}) is ignored{ignored}; use {public}")
        names = ", ".join(f"{key!r} ({own.__module__}.{own.__qualname__})" for key, own in ours.items())
        return (f"{self.label}: its {cls.kind} {cls.name!r} ({theirs}) is registered under its name, but polynn's "
                f"own {cls.kind}s now hold {names}: those names mean polynn's{ignored}")


def component_implementation(backend: str, kind: str, name: str) -> Any | None:
    """An implementation a component plugin registered for `backend`, or None."""
    _ensure_loaded()
    held = _state.implementations.get((backend, kind, name.lower()))
    return None if held is None else held[0]


def backend_distributions(name: str) -> tuple[str, ...]:
    """The distributions the backend registered as `name` declared (none for an unknown name)."""
    _ensure_loaded()
    entry = _state.backends.get(name)
    return () if entry is None else tuple(entry.distributions)


def backend_entries() -> list[BackendEntry]:
    _ensure_loaded()
    return sorted(_state.backends.values(), key=lambda e: e.name)


def failures() -> list[PluginFailure]:
    """The plugins that failed, loading the plugins first; after an interrupted load, its record
    (what was loading), without loading again: the next use of a backend or component does."""
    with _state.lock:
        if not _state.interrupted:
            _ensure_loaded()
        return list(_state.failures)


def get_backend(name: str) -> Backend:
    """The Backend instance registered as `name`, loading it (and its engine) on first use."""
    _ensure_loaded()
    entry = _state.backends.get(name)
    if entry is None:
        _raise_if_its_plugin_failed(name)
        raise UnknownBackendError(name, _state.backends)
    if entry.instance is not None:
        return entry.instance
    if not entry.engine_installed():
        raise BackendNotInstalledError(name, entry.engine, entry.install)
    try:
        instance = entry.load()
    except ImportError as error:
        entry.error = error
        missing = getattr(error, "name", None) or ""
        if entry.engine and (missing == entry.engine or missing.startswith(entry.engine + ".")):
            raise BackendNotInstalledError(name, entry.engine, entry.install, error) from error
        # Any other import failure is the plugin's (or a broken engine install), not a missing engine.
        raise PluginError(
            f"backend {name!r} from plugin {entry.plugin!r} ({entry.distribution}) failed to import: "
            f"{type(error).__name__}: {error}") from error
    except KeyboardInterrupt:
        raise  # nothing was kept: the next use loads it again
    except BaseException as error:  # SystemExit included: a backend does not end the program
        entry.error = error
        raise PluginError(
            f"backend {name!r} from plugin {entry.plugin!r} ({entry.distribution}) failed to load: "
            f"{type(error).__name__}: {error}") from error
    # Checked before it is kept, so every later use fails the same way instead of on a bad object.
    try:
        _check_loaded(entry, instance)
    except PluginError as error:
        entry.error = error
        raise
    entry.instance = instance
    return instance


def _raise_if_its_plugin_failed(name: str) -> None:
    """A backend unknown because the plugin registering it failed is reported as that failure: a
    plugin whose hook registered it and then raised, else one named after it (entry point
    'name', distribution 'name' or 'polynn-name') that failed before registering anything."""
    def project(failure: PluginFailure) -> str:
        return failure.distribution.rsplit(" ", 1)[0].lower().replace("_", "-")

    available = ", ".join(sorted(_state.backends)) or "none"
    for failure in _state.failures:
        if name in failure.withdrawn:
            raise PluginError(f"backend {name!r} is unavailable: plugin {failure.plugin!r} registered it, then "
                              f"failed, so it was withdrawn: {failure}. Available backends: {available}")
    wanted = {name.lower().replace("_", "-"), f"polynn-{name.lower().replace('_', '-')}"}
    for failure in _state.failures:
        if failure.plugin == name or project(failure) in wanted:
            raise PluginError(f"unknown backend {name!r}, probably because the plugin that would register it "
                              f"failed: {failure}. Available backends: {available}")


# polynn.backend.Backend, handed over by polynn.backend (which imports this module) as it defines it.
_backend_class: type | None = None


def accept_backends_of(cls: type) -> None:
    """Record the class every backend's load() must return an instance of (polynn.backend.Backend)."""
    global _backend_class
    _backend_class = cls


def _check_loaded(entry: BackendEntry, instance: Any) -> None:
    Backend: Any = _backend_class  # set by polynn.backend on import, before any backend loads
    where = f"backend {entry.name!r} from plugin {entry.plugin!r} ({entry.distribution})"
    if isinstance(instance, type) and issubclass(instance, Backend):
        raise PluginError(f"{where}: its load() returned the class {instance.__module__}.{instance.__qualname__}, "
                          f"not an instance; accepted: an instance of polynn.backend.Backend")
    if not isinstance(instance, Backend):
        raise PluginError(
            f"{where}: its load() returned {type(instance).__module__}.{type(instance).__qualname__} "
            f"({instance!r:.80}); accepted: an instance of polynn.backend.Backend")
    try:
        name = instance.name
    except Exception as error:
        raise PluginError(f"{where}: reading its load()'s Backend's name raised {type(error).__name__}: {error}; "
                          f"accepted: a Backend whose name attribute is {entry.name!r}") from error
    if name != entry.name:
        # Implementations registered for the registered name would never be found under another.
        raise PluginError(
            f"{where}: its load() returned a Backend named {name!r}, not {entry.name!r}; "
            f"accepted: a Backend whose name attribute is the name it is registered under, {entry.name!r}")


def backends_implementing(component: Any) -> list[str]:
    """The registered backends, loaded or not, whose engine is installed and that implement
    `component` (a spec or spec class): each is loaded to ask it. A backend that fails to load is
    left out here; using it says why."""
    names = []
    for entry in backend_entries():
        if entry.instance is None and (entry.error is not None or not entry.engine_installed()):
            continue
        try:
            if get_backend(entry.name).supports(component):
                names.append(entry.name)
        except KeyboardInterrupt:
            raise
        except Exception:  # a broken backend is not one implementing it; its own use reports it
            continue
    return names


def describe_backend(name: str) -> str:
    """'backend NAME from plugin P (DISTRIBUTION)', for errors about what a backend did."""
    entry = _state.backends.get(name)
    if entry is None:
        return f"backend {name!r}"
    return f"backend {name!r} from plugin {entry.plugin!r} ({entry.distribution})"


def lookup(kind: str, name: str) -> type[Any]:
    """The spec class registered for `name` (case-insensitive), loading the plugins first when it
    is unknown (it may come from a component plugin not loaded yet); else UnknownComponentError."""
    if not _registry.known(kind, name):
        load()
    return _registry.lookup(kind, name)


def component_specs(kind: str) -> list[type[Any]]:
    """Every registered component class of a kind (polynn's and plugins'), in name order."""
    load()
    return _registry.specs(kind)


def reset() -> None:
    """Forget every plugin and backend, so the next use loads them again (for tests)."""
    global _state
    _state = _State()
    _packages_distributions.cache_clear()
    _registry.forget_plugin_specs()
