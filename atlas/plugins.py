"""Find plugins through entry points and collect what each registers."""

from __future__ import annotations

import importlib.metadata
import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, unknown

GROUP = hookspecs.PROJECT
KINDS = ("models", "objectives", "regularizers", "parameterizations", "datasets")
ENV_VAR = "ATLAS_PLUGINS"


@dataclass
class PluginInfo:
    """One plugin: its name, where it came from and what it registered."""

    name: str
    module: str
    distribution: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``atlas plugins --json``."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "registered": self.registered,
            "error": self.error,
        }


@dataclass
class Registry:
    """Everything the plugins registered, by kind and name."""

    items: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
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
        self.items[kind][name] = value
        self.owners[(kind, name)] = plugin

    def get(self, kind: str, name: str) -> Any:
        """Return the registered value or raise an error naming close matches."""
        try:
            return self.items[kind][name]
        except KeyError:
            hint = "run `atlas plugins` to see what is installed"
            raise PluginError(unknown(kind[:-1], name, self.items[kind], hint)) from None

    def names(self, kind: str) -> list[str]:
        """Return the sorted names registered for kind."""
        return sorted(self.items[kind])


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


def _collect(pm: pluggy.PluginManager, registry: Registry, infos: dict[str, PluginInfo]) -> None:
    """Call each plugin's register hooks one by one so each name has an owner."""
    for kind in KINDS:
        hook = getattr(pm.hook, f"feature_atlas_register_{kind}")
        for impl in hook.get_hookimpls():  # registration order: built-ins first
            info = infos[impl.plugin_name]
            if info.error:
                continue

            def register(name: str, value: Any, _kind=kind, _info=info) -> None:
                registry.add(_kind, name, value, _info.name)
                _info.registered.setdefault(_kind, []).append(name)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                info.error = f"{type(exc).__name__} in {impl.function.__name__}: {exc}"


def load_registry(
    env: Mapping[str, str] | None = None, extra: Sequence[tuple[str, Any]] = ()
) -> Registry:
    """Load the built-ins, every entry-point plugin and any extra (name, plugin) pairs."""
    from . import builtins

    env = os.environ if env is None else env
    pm = get_plugin_manager()
    registry = Registry()
    candidates = [(PluginInfo("builtins", builtins.__name__, "feature-atlas"), builtins)]
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
