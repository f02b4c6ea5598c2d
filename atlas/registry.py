"""Find plugins through entry points, check what each registers against the contract, and
hand out what they registered through typed accessors."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .contracts import (
    ContractError,
    Dataset,
    DatasetSource,
    ModelSource,
    ObjectiveEntry,
    Parameterization,
    RegularizerFactory,
    check_objective,
    check_parameterization,
    check_regularizer,
    check_source,
)
from .errors import ModelError, PluginError, unknown

if TYPE_CHECKING:
    from .models.adapter import ModelAdapter

GROUP = hookspecs.PROJECT
KINDS = ("models", "objectives", "regularizers", "parameterizations", "datasets")
ENV_VAR = "ATLAS_PLUGINS"
BUILTINS = "atlas.builtins"  # the core's own plugin, loaded by name like any other
HINT = "run `atlas plugins` to see what is installed"


@dataclass
class PluginInfo:
    """One plugin: its name, where it came from and what it registered."""

    name: str
    module: str
    distribution: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def fail(self, message: str) -> None:
        """Mark the plugin failed, keeping earlier reasons."""
        self.error = f"{self.error}; {message}" if self.error else message

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``atlas plugins --json``."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "registered": self.registered,
            "error": self.error,
        }


def _objective(name: str, factory: object, *, channels: bool = False) -> ObjectiveEntry:
    entry = ObjectiveEntry(factory, bool(channels))
    check_objective(entry)
    return entry


def _regularizer(name: str, factory: object) -> object:
    check_regularizer(factory)
    return factory


def _parameterization(name: str, value: object) -> object:
    check_parameterization(value)
    return value


def _model_source(name: str, value: object) -> object:
    check_source(value, ModelSource)
    return value


def _dataset_source(name: str, value: object) -> object:
    check_source(value, DatasetSource)
    return value


# kind -> how a registration of that kind is checked and stored
ACCEPT: dict[str, Callable[..., object]] = {
    "models": _model_source,
    "objectives": _objective,
    "regularizers": _regularizer,
    "parameterizations": _parameterization,
    "datasets": _dataset_source,
}


@dataclass
class Registry:
    """Everything the plugins registered, by kind and name, read through typed accessors."""

    _items: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    refused: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)

    @property
    def errors(self) -> list[PluginInfo]:
        """Return the plugins that failed to load."""
        return [p for p in self.plugins if p.error]

    def add(self, kind: str, name: str, value: Any, plugin: str) -> None:
        """Register value under kind/name for plugin; a name taken twice is an error."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {kind[:-1]} with no name")
        owner = self.owners.get((kind, name))
        if owner is not None:
            raise PluginError(
                f"{kind[:-1]} {name!r} is registered by both plugin {owner!r} and plugin "
                f"{plugin!r}; uninstall one of them or limit plugins with {ENV_VAR}"
            )
        self._items[kind][name] = value
        self.owners[(kind, name)] = plugin

    def refuse(self, kind: str, name: str, plugin: str, reason: str) -> None:
        """Remember a registration that did not fit its contract, to explain it when named."""
        self.refused[(kind, name)] = (plugin, reason)

    def _get(self, kind: str, name: str, what: str | None = None) -> Any:
        """Return the registered value or raise an error naming close matches."""
        if name in self._items[kind]:
            return self._items[kind][name]
        what = what or kind[:-1]
        if (kind, name) in self.refused:
            plugin, reason = self.refused[(kind, name)]
            raise PluginError(
                f"{what} {name!r} of plugin {plugin!r} does not fit its contract: {reason}; "
                "fix or uninstall that plugin"
            )
        raise PluginError(unknown(what, name, self._items[kind], HINT))

    def has(self, kind: str, name: str) -> bool:
        """Return True if a plugin registered kind/name."""
        return name in self._items[kind]

    def names(self, kind: str) -> list[str]:
        """Return the sorted names registered for kind."""
        return sorted(self._items[kind])

    def objective(self, name: str) -> ObjectiveEntry:
        """Return the objective factory registered as name."""
        return self._get("objectives", name)

    def regularizer(self, name: str) -> RegularizerFactory:
        """Return the regularizer factory registered as name."""
        return self._get("regularizers", name)

    def parameterization(self, name: str) -> Parameterization:
        """Return the parameterization registered as name."""
        return self._get("parameterizations", name)

    def term(self, name: str) -> tuple[bool, object]:
        """Return (is_penalty, factory) for a name an objective expression calls: an
        objective's factory, or else a regularizer's."""
        if self.has("objectives", name):
            return False, self.objective(name).factory
        if self.has("regularizers", name) or ("regularizers", name) in self.refused:
            return True, self.regularizer(name)
        if ("objectives", name) in self.refused:
            self.objective(name)  # raises, saying what is wrong with it
        names = [*self._items["objectives"], *self._items["regularizers"]]
        raise PluginError(unknown("objective", name, names, HINT))

    def model_source(self, namespace: str) -> ModelSource:
        """Return the model source of a namespace."""
        try:
            return self._get("models", namespace, "model namespace")
        except PluginError as exc:
            raise ModelError(f"{exc}; install the plugin that provides it") from None

    def dataset_source(self, namespace: str) -> DatasetSource:
        """Return the data set source of a namespace."""
        from .datasets import DatasetError

        try:
            return self._get("datasets", namespace, "data set namespace")
        except PluginError as exc:
            raise DatasetError(f"{exc}; install the plugin that provides it") from None

    def load_model(self, source: str, weights: str | None = None, **options) -> ModelAdapter:
        """Load the adapter for a source string such as ``torchvision/resnet18``.

        Options named in INPUT_KEYS (input_size, channels, mean, std, ...) override the
        adapter's input spec; the rest go to the source's loader.
        """
        from .models.sources import INPUT_KEYS, parse, with_input

        namespace, name = parse(source)
        own = {k: v for k, v in options.items() if k not in INPUT_KEYS and k != "labels"}
        adapter = self.model_source(namespace).load(name, weights=weights, registry=self, **own)
        return with_input(adapter, options)

    def load_dataset(self, source: str, **options) -> Dataset:
        """Open the data set a source string names."""
        from .datasets import parse

        namespace, name = parse(source)
        return self.dataset_source(namespace).load(name, **options)


def get_plugin_manager() -> pluggy.PluginManager:
    """Return a fresh plugin manager that knows the hook specifications."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


def _selected(env: Mapping[str, str]) -> set[str] | None:
    """Return the plugin names the environment allows, or None for all."""
    value = env.get(ENV_VAR)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _entry_point_plugins(env: Mapping[str, str]) -> list[tuple[PluginInfo, Any]]:
    """Import every allowed entry-point plugin; a broken one carries its error."""
    allowed = _selected(env)
    found = []
    for ep in importlib.metadata.entry_points(group=GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = ep.dist.name if ep.dist else None
        info = PluginInfo(name=ep.name, module=ep.value, distribution=dist)
        try:
            found.append((info, ep.load()))
        except Exception as exc:  # any import failure is the plugin's, not ours
            info.error = f"{type(exc).__name__}: {exc}"
            found.append((info, None))
    return found


def _register_plugin(pm: pluggy.PluginManager, info: PluginInfo, plugin: Any) -> None:
    """Register plugin with pm; record an error on info if its hooks are bad."""
    try:
        pm.register(plugin, name=info.name)
        pm.check_pending()
    except Exception as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        info.error = f"{type(exc).__name__}: {exc}"


def _register(registry: Registry, kind: str, info: PluginInfo) -> Callable[..., None]:
    """Return the register callable a plugin's hook of kind receives: it checks each
    registration against the contract; one that does not fit is refused and marks the plugin
    failed, while its other registrations stand."""

    def register(name: str, value: Any, **extra: Any) -> None:
        try:
            accepted = ACCEPT[kind](name, value, **extra)
        except (ContractError, TypeError) as exc:
            registry.refuse(kind, name, info.name, str(exc))
            info.fail(f"{kind[:-1]} {name!r} does not fit its contract: {exc}")
            return
        registry.add(kind, name, accepted, info.name)
        info.registered.setdefault(kind, []).append(name)

    return register


def _collect(pm: pluggy.PluginManager, registry: Registry, infos: dict[str, PluginInfo]) -> None:
    """Call each plugin's register hooks one by one so each name has an owner; a plugin
    whose hook raised gets none of its later hooks called."""
    crashed: set[str] = set()
    for kind in KINDS:
        hook = getattr(pm.hook, f"feature_atlas_register_{kind}")
        for impl in hook.get_hookimpls():  # registration order: built-ins first
            info = infos[impl.plugin_name]
            if info.name in crashed:
                continue
            try:
                impl.function(register=_register(registry, kind, info))
            except PluginError:
                raise
            except Exception as exc:
                info.fail(f"{type(exc).__name__} in {impl.function.__name__}: {exc}")
                crashed.add(info.name)


def load_registry(
    env: Mapping[str, str] | None = None, extra: Sequence[tuple[str, Any]] = ()
) -> Registry:
    """Load the built-ins, every entry-point plugin and any extra (name, plugin) pairs."""
    env = os.environ if env is None else env
    pm = get_plugin_manager()
    registry = Registry()
    builtins = importlib.import_module(BUILTINS)
    candidates = [(PluginInfo("builtins", BUILTINS, "feature-atlas"), builtins)]
    candidates += _entry_point_plugins(env)
    for name, plugin in extra:
        module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__name__
        candidates.append((PluginInfo(name, module), plugin))
    infos: dict[str, PluginInfo] = {}
    for info, plugin in candidates:
        registry.plugins.append(info)
        if info.name in infos:
            info.error = info.error or f"a plugin named {info.name!r} is already loaded"
            continue
        infos[info.name] = info
        if plugin is not None:
            _register_plugin(pm, info, plugin)
    _collect(pm, registry, infos)
    return registry
