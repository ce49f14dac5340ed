"""Loading plugins: ``PLUGINS``/``plugins:`` entries and installed ``claude2api.plugins`` entry points.

A plugin is a module (a dotted path, a ``.py`` file, or what an entry point names) with a
``chat_middleware(settings, options)`` factory (``chat_middleware(settings)`` when it takes no
options). A module may declare ``requires_api = N``: it is refused unless ``N`` is
:data:`claude2api.plugin.PLUGIN_API_VERSION`. Every problem is a :class:`ConfigError` naming the
plugin, at start and on reload alike. On reload (SIGHUP) modules are executed afresh, so an edited
plugin takes effect without a restart.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from claude2api.config import ConfigError, PluginSpec, Settings
from claude2api.core.types import ChatMiddleware, ChatMiddlewareFactory
from claude2api.plugin import PLUGIN_API_VERSION

#: Installed packages announce plugins in this entry point group (``PLUGINS_ENTRY_POINTS`` enables them).
ENTRY_POINT_GROUP = "claude2api.plugins"


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin: its name for messages, its factory and the options the factory gets."""

    name: str
    factory: ChatMiddlewareFactory
    options: dict[str, Any]

    def middleware(self, settings: Settings) -> ChatMiddleware | None:
        """Call the factory; a failure is a :class:`ConfigError` naming the plugin."""
        try:
            if _takes_options(self.factory):
                return self.factory(settings, copy.deepcopy(self.options))
            if self.options:
                raise TypeError("it was given options but its chat_middleware(settings) takes none")
            return self.factory(settings)
        except ConfigError:
            raise
        except Exception as exc:
            raise _config_error(f"plugin {self.name} failed to start", exc) from None


def load_plugins(settings: Settings, *, fresh: bool) -> list[Plugin]:
    """The configured plugins in order: ``plugins`` entries, then enabled entry points (by name).

    ``fresh`` re-executes modules already imported (a reload picks up edited code).
    """
    plugins = [_load(spec, fresh) for spec in settings.plugins]
    listed = {spec.ref for spec in settings.plugins if spec.entry_point}
    wanted = settings.plugins_entry_points
    if wanted:
        available = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        missing = sorted(set(wanted) - {"*"} - set(available))
        if missing:
            raise ConfigError(f"PLUGINS_ENTRY_POINTS: no installed {ENTRY_POINT_GROUP} entry point {', '.join(missing)}")
        names = sorted(available) if "*" in wanted else list(dict.fromkeys(wanted))
        plugins += [_from_entry_point(available[n], {}, fresh) for n in names if n not in listed]
    return plugins


def _load(spec: PluginSpec, fresh: bool) -> Plugin:
    if spec.entry_point:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec.ref]
        if not found:
            raise ConfigError(f"PLUGINS: no installed {ENTRY_POINT_GROUP} entry point {spec.ref}")
        return _from_entry_point(found[0], dict(spec.options), fresh)
    try:
        module = _import_file(spec.ref) if spec.ref.endswith(".py") else _import(spec.ref, fresh)
        factory = getattr(module, "chat_middleware", None)
        if not callable(factory):
            raise ImportError(f"plugin {spec.ref} has no chat_middleware(settings, options) function")
    except Exception as exc:
        raise _config_error(f"PLUGINS: cannot load {spec.ref}", exc) from None
    _check_api(spec.ref, module)
    return Plugin(spec.ref, factory, dict(spec.options))


def _from_entry_point(ep: EntryPoint, options: dict[str, Any], fresh: bool) -> Plugin:
    """An entry point names a module (its ``chat_middleware`` is the factory) or ``module:factory``."""
    name = f"{ep.name} ({ep.value})"
    try:
        module = _import(ep.module, fresh)
        target: Any = module
        for attribute in (ep.attr or "chat_middleware").split("."):
            target = getattr(target, attribute)
        if not callable(target):
            raise ImportError(f"{ep.value} is not a chat_middleware factory")
    except Exception as exc:
        raise _config_error(f"PLUGINS_ENTRY_POINTS: cannot load {name}", exc) from None
    _check_api(name, module)
    return Plugin(name, target, options)


def _import(name: str, fresh: bool) -> ModuleType:
    importlib.invalidate_caches()  # a plugin file added since start is found
    module = sys.modules.get(name)
    if module is not None and fresh:
        return importlib.reload(module)
    return importlib.import_module(name)


def _import_file(ref: str) -> ModuleType:
    """A ``.py`` file, executed afresh each time (it is not kept in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(f"claude2api_plugin_{Path(ref).stem}", ref)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load plugin file {ref}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_api(name: str, module: ModuleType) -> None:
    required = getattr(module, "requires_api", PLUGIN_API_VERSION)
    if required != PLUGIN_API_VERSION:
        raise ConfigError(
            f"plugin {name} requires plugin API {required!r}, this claude2api provides {PLUGIN_API_VERSION}:"
            " update claude2api or the plugin"
        )


def _takes_options(factory: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return True
    return sum(p.kind in positional for p in parameters) >= 2


def _config_error(what: str, exc: Exception) -> ConfigError:
    return ConfigError(f"{what}: {type(exc).__name__}: {exc}".splitlines()[0][:500])
