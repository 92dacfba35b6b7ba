"""Finding, loading and asking plugins; the typed facade over the hooks.

Nothing loads at import time. :func:`load_plugins` builds a plugin manager,
registers the built-in plugin and every entry point in the ``connector_core``
group (subject to the allow-list and block-list environment variables), checks
every hook implementation against the specs, and returns a :class:`Plugins`
facade. The rest of the code calls the facade's methods, never ``pm.hook``.

One plugin's failure never takes down the rest: a plugin that fails to import,
has a misspelled or mis-signed hook implementation, raises inside a hook or
returns the wrong type is recorded as a :class:`LoadProblem` naming it, and
everything else keeps working.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
import pluggy

from . import _builtin, hookspecs
from ._markers import PROJECT_NAME, __version__
from .dataprovider import PREFIX as DATA_PREFIX
from .dataprovider import DataProvider, provider_files
from .errors import ConnectorError, DataFileError, DeclarationError, PluginError, UnknownNameError, ValidationError
from .models import Provider
from .registries import CommandRegistry, ProviderRegistry

if TYPE_CHECKING:
    from .models import ProviderDeclaration, ScopeCatalogue

__all__ = [
    "ENV_ALLOW",
    "ENV_BLOCK",
    "ENV_TRACE",
    "LoadProblem",
    "PluginInfo",
    "Plugins",
    "ProviderRegistry",
    "load_plugins",
    "make_plugin_manager",
]

_T = TypeVar("_T")

#: Comma-separated entry-point or distribution names: load only these plugins.
#: Set but empty, it loads no external plugin at all.
ENV_ALLOW = "CONNECTOR_CORE_PLUGINS"
#: Comma-separated entry-point or distribution names never to load.
ENV_BLOCK = "CONNECTOR_CORE_DISABLED_PLUGINS"
#: Set to 1 to trace every hook call to standard error.
ENV_TRACE = "CONNECTOR_CORE_TRACE_PLUGINS"

BUILTIN_PLUGIN_NAME = "connector_core.builtin"


@attrs.frozen
class LoadProblem:
    """Something wrong with one plugin, reported by name while the rest work."""

    plugin: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.message}"


@attrs.frozen
class PluginInfo:
    """What ``connector plugins`` shows about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    providers: tuple[str, ...]
    error: str | None = None
    #: A provider declared as data: its file.
    path: str | None = None


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager with a fast path for module plugins (every entry point is one).

    pluggy looks at each attribute a plugin has with ``inspect.getattr_static``; with
    hundreds of installed providers that was most of ``connector providers list``. In a
    module, a plain function is a hook implementation exactly when it carries the
    ``connector_core_impl`` marker, which its ``__dict__`` tells at once, and values that
    are not functions or method objects never are. Method objects go through pluggy's own
    lookup, so what registers is the same as with pluggy's manager.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if isinstance(plugin, types.ModuleType):
            value = plugin.__dict__.get(name)
            if isinstance(value, types.FunctionType):
                opts = value.__dict__.get(self.project_name + "_impl")
                return cast("pluggy.HookimplOpts", opts) if isinstance(opts, dict) else None
            if not isinstance(value, (types.MethodType, staticmethod, classmethod)):
                return None
        return super().parse_hookimpl_opts(plugin, name)


def make_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the ``connector_core`` hook specs and nothing registered."""
    pm = _PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _canonical(name: str) -> str:
    """Plugin and distribution names compare as PEP 503 does: case, '-', '_' and '.' alike."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _split_env(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(_canonical(v) for v in value.split(",") if v.strip())


def _entry_points() -> Sequence[Any]:
    from importlib.metadata import entry_points

    return tuple(entry_points(group=PROJECT_NAME))


def load_plugins(
    plugins: Iterable[object] = (),
    *,
    entry_points: bool = True,
    env: Mapping[str, str] | None = None,
    lazy: bool = False,
) -> Plugins:
    """Build the plugin manager and return the facade over it.

    ``plugins`` are extra plugin objects (modules or instances) to register, as
    tests and embedding applications do. ``entry_points=False`` skips installed
    plugins entirely, and with them the providers as data that the environment names
    (``CONNECTOR_PROVIDERS_PATH``, the connector home's ``providers`` folder) or that the
    core ships (``oauth2-generic``; pass ``DataProvider(GENERIC_OAUTH2_FILE)`` from
    :mod:`connector_core.dataprovider` to have it). ``env`` defaults to :data:`os.environ` and is read for
    :data:`ENV_ALLOW`, :data:`ENV_BLOCK` and :data:`ENV_TRACE`.

    With ``lazy=True`` entry points are imported only when needed: asking for
    provider ``KEY`` first imports the entry point named ``KEY`` (the convention
    for provider plugins) and everything else only if that does not provide it;
    listings import everything. The CLI loads lazily, so ``connector providers
    show KEY`` does not pay for the other installed providers.
    """
    env = os.environ if env is None else env
    pm = make_plugin_manager()
    problems: list[LoadProblem] = []
    dists: dict[str, Any] = {}
    pending: dict[str, Any] = {}

    pm.register(_builtin, name=BUILTIN_PLUGIN_NAME)

    allow = _split_env(env.get(ENV_ALLOW))
    block = _split_env(env.get(ENV_BLOCK)) or frozenset()
    if entry_points:
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            if allow is not None or block:
                # Reading a distribution's name parses its METADATA: only when a list needs it.
                dist_name = dist.name if dist is not None else None
                names = {_canonical(n) for n in (ep.name, dist_name) if n}
                if allow is not None and not names & allow:
                    continue
                if names & block:
                    continue
            dists[ep.name] = dist
            pending.setdefault(ep.name, ep)

    for index, obj in enumerate(plugins):
        name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{index}"
        _register(pm, obj, name, problems)

    if entry_points:
        # Providers as data the environment names (the connector home, CONNECTOR_PROVIDERS_PATH):
        # installed things, like entry points, so an isolated manager (entry_points=False) has none.
        for path in provider_files(env):
            data = DataProvider(path)
            if _data_listed(data, allow, block):
                _register(pm, data, data.__name__, problems)

    if env.get(ENV_TRACE, "") not in ("", "0"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()

    _check_pending(pm, problems)
    facade = Plugins(pm, problems, dists, pending=pending, shipped_providers=entry_points, allow=allow, block=block)
    if not lazy:
        facade.load_all()
    return facade


def _data_listed(data: DataProvider, allow: frozenset[str] | None, block: frozenset[str]) -> bool:
    """Whether the allow-list and block-list let a provider file load: they name it by its
    file name without ``.toml`` (``oauth2-generic``) or by its plugin name (``data:PATH``)."""
    names = {_canonical(data.stem), _canonical(data.__name__)}
    return (allow is None or bool(names & allow)) and not names & block


def _check_pending(pm: pluggy.PluginManager, problems: list[LoadProblem]) -> None:
    """pluggy's own check that every hook implementation matches a spec; :func:`_register`
    already left out each offending plugin, so this is the belt to its braces."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:  # pragma: no cover - _register catches these first
        problems.append(LoadProblem(getattr(exc.plugin, "__name__", "?"), str(exc)))


def _load_entry_point(pm: pluggy.PluginManager, ep: Any, problems: list[LoadProblem]) -> None:
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must not break the others
        problems.append(LoadProblem(ep.name, f"failed to import {ep.value}: {_describe(exc)}"))
        return
    _register(pm, obj, ep.name, problems)


def _register(pm: pluggy.PluginManager, obj: object, name: str, problems: list[LoadProblem]) -> None:
    """Register one plugin; on any contract breach, record it and leave it out."""
    try:
        pm.register(obj, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        problems.append(LoadProblem(name, _describe_validation(exc)))
        return
    # check_pending, per plugin, so that one misspelled hook leaves only its plugin out.
    # Only the few callers without a spec can hold such an implementation; looking at
    # those alone keeps registering N plugins linear (get_hookcallers is O(N) itself).
    for caller in list(vars(pm.hook).values()):
        if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is obj and not impl.optionalhook:
                problems.append(LoadProblem(name, _unknown_hook_message(pm, caller.name)))
                pm.unregister(obj)
                return


def _unknown_hook_message(pm: pluggy.PluginManager, hook_name: str) -> str:
    import difflib

    known = [n for n in dir(hookspecs) if n.startswith(f"{PROJECT_NAME}_")]
    match = difflib.get_close_matches(hook_name, known, n=1)
    hint = f"; did you mean {match[0]!r}?" if match else f"; expected one of: {', '.join(known)}"
    return f"implements unknown hook {hook_name!r}{hint}"


def _describe_validation(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "Argument(s)" in text and ("not available in hookspec" in text or "can not be found in the hookspec" in text):
        return "a hook implementation takes arguments the hook spec does not offer: " + text
    return text


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")


def _culprit(caller: pluggy.HookCaller, tb: types.TracebackType | None) -> str:
    """The plugin whose hook implementation appears in a traceback."""
    codes = {impl.function.__code__: impl.plugin_name for impl in caller.get_hookimpls()}
    found = "unknown plugin"
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code)
        if name is not None:
            found = name
        tb = tb.tb_next
    return found


class Plugins:
    """The typed facade over the plugin manager.

    Get one from :func:`load_plugins`. Declarations are gathered lazily, per
    provider, the first time they are asked for, then cached.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        problems: Iterable[LoadProblem] = (),
        distributions: Mapping[str, Any] | None = None,
        *,
        pending: Mapping[str, Any] | None = None,
        shipped_providers: bool = True,
        allow: frozenset[str] | None = None,
        block: frozenset[str] = frozenset(),
    ) -> None:
        self._allow = allow
        self._block = block
        self._pm = pm
        #: Whether the providers the core ships as data (the generic OAuth 2.0 provider) load;
        #: an isolated manager (``load_plugins(entry_points=False)``) holds only what it is given.
        self._shipped_providers = shipped_providers
        self._problems = list(problems)
        self._distributions = dict(distributions or {})
        #: Entry points not imported yet (lazy loading), by name, in discovery order.
        self._pending: dict[str, Any] = dict(pending or {})
        self._owners: dict[str, tuple[Provider, str]] = {}
        self._claimed: dict[str, list[str]] = {}
        self._asked: set[str] = set()
        self._register_impls_seen: list[Any] = []
        self._duplicates: dict[str, tuple[str, ...]] = {}
        self._declarations: dict[str, ProviderDeclaration] = {}
        self._broken: dict[str, PluginError] = {}
        #: Plugins whose connector_core_provider_files was called already.
        self._files_asked: set[str] = set()
        #: Loading, registering and gathering happen once, whichever thread asks first; the
        #: others wait for it rather than see a half-built registry.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<Plugins {len(self._pm.get_plugins())} plugins, {len(self._problems)} problems>"

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, for advanced use (hook tracing, monitoring)."""
        return self._pm

    # ---------------------------------------------------------------- providers

    def load_all(self) -> None:
        """Import every entry point not imported yet."""
        self._load(list(self._pending))

    def _load(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                ep = self._pending.pop(name, None)
                if ep is not None:
                    _load_entry_point(self._pm, ep, self._problems)
            _check_pending(self._pm, self._problems)

    def _claim(self, provider: Provider, plugin: str) -> None:
        """Record that ``plugin`` registered ``provider``. A key claimed twice is a
        problem naming both plugins; the plugin whose entry point is named after the
        key (the convention) keeps it, and with no such plugin the key is unusable."""
        key = provider.key
        claimants = self._claimed.setdefault(key, [])
        claimants.append(plugin)
        if len(claimants) == 1:
            self._owners[key] = (provider, plugin)
            return
        both = " and ".join(repr(p) for p in claimants)
        canonical = next((p for p in claimants if _canonical(p) == _canonical(key)), None)
        if canonical is not None:
            if plugin == canonical:
                self._owners[key] = (provider, plugin)
            ignored = [p for p in claimants if p != canonical]
            self._problems.append(
                LoadProblem(
                    ignored[-1],
                    f"provider key {key!r} is registered by both {both}; using {canonical!r}, whose entry "
                    f"point is named after the key",
                )
            )
            return
        self._owners.pop(key, None)
        self._duplicates[key] = tuple(claimants)
        for name in claimants if len(claimants) == 2 else claimants[-1:]:
            self._problems.append(LoadProblem(name, f"provider key {key!r} is registered by both {both}"))

    def _registered(self) -> dict[str, tuple[Provider, str]]:
        """Providers registered by the plugins loaded so far (each plugin asked once)."""
        with self._lock:
            return self._register_new()

    def _add_provider_files(self) -> None:
        """Register a :class:`~connector_core.dataprovider.DataProvider` for each file a plugin
        loaded so far ships (``connector_core_provider_files``), each plugin asked once."""
        for impl in self._pm.hook.connector_core_provider_files.get_hookimpls():
            if impl.plugin_name in self._files_asked:
                continue
            self._files_asked.add(impl.plugin_name)
            if impl.plugin_name == BUILTIN_PLUGIN_NAME and not self._shipped_providers:
                continue
            try:
                files = impl.function()
            except Exception as exc:  # a broken plugin must not break the others
                self._problems.append(
                    LoadProblem(impl.plugin_name, f"connector_core_provider_files raised {_describe(exc)}")
                )
                continue
            if isinstance(files, (str, bytes)) or not isinstance(files, Iterable):
                self._problems.append(
                    LoadProblem(
                        impl.plugin_name,
                        f"connector_core_provider_files returned {type(files).__name__}; expected a list of paths",
                    )
                )
                continue
            for file in files:
                data = DataProvider(file, origin=impl.plugin_name)
                if not _data_listed(data, self._allow, self._block):
                    continue
                if self._pm.has_plugin(data.__name__):
                    continue  # the same file named twice (or also on CONNECTOR_PROVIDERS_PATH)
                _register(self._pm, data, data.__name__, self._problems)

    def _register_new(self) -> dict[str, tuple[Provider, str]]:
        self._add_provider_files()
        caller = self._pm.hook.connector_core_register_providers
        impls = caller.get_hookimpls()
        if impls == self._register_impls_seen:  # the common case: nothing registered since
            return self._owners
        self._register_impls_seen = impls
        fresh = [impl for impl in impls if impl.plugin_name not in self._asked]
        if not fresh:
            return self._owners
        # Call each implementation on its own, in registration order, so that what
        # it registers is attributed to it and one plugin's exception does not
        # stop the others.
        for impl in fresh:
            self._asked.add(impl.plugin_name)
            registry = ProviderRegistry(impl.plugin_name)
            try:
                impl.function(*([registry] if impl.argnames else []))
            except ConnectorError as exc:
                self._problems.append(LoadProblem(impl.plugin_name, _strip_plugin(exc, impl.plugin_name)))
                continue
            except Exception as exc:
                self._problems.append(
                    LoadProblem(impl.plugin_name, f"connector_core_register_providers raised {_describe(exc)}")
                )
                continue
            for provider in registry.providers:
                self._claim(provider, impl.plugin_name)
        self._owners = dict(sorted(self._owners.items()))
        return self._owners

    def providers(self) -> tuple[Provider, ...]:
        """Every usable provider, sorted by key."""
        self.load_all()
        return tuple(provider for provider, _ in self._registered().values())

    def provider_keys(self) -> tuple[str, ...]:
        self.load_all()
        return tuple(self._registered())

    def provider(self, key: str) -> Provider:
        """The provider registered under ``key``."""
        return self._owner(key)[0]

    def plugin_of(self, key: str) -> str:
        """The name of the plugin that registered provider ``key``."""
        return self._owner(key)[1]

    def _owner(self, key: str) -> tuple[Provider, str]:
        registered = self._registered()
        if key not in registered and key not in self._duplicates and self._pending:
            # By convention a provider's entry point is named after its key: try that
            # one first, then everything.
            for names in ([key] if key in self._pending else [], list(self._pending)):
                self._load(names)
                registered = self._registered()
                if key in registered or key in self._duplicates:
                    break
        if key in registered:
            return registered[key]
        if key in self._duplicates:
            both = " and ".join(repr(p) for p in self._duplicates[key])
            raise PluginError(
                self._duplicates[key][0],
                f"provider key {key!r} is registered by both {both}; uninstall or block one (set {ENV_BLOCK})",
            )
        self.load_all()
        raise UnknownNameError("provider", key, list(self._registered()))

    def declaration(self, key: str) -> ProviderDeclaration:
        """Everything provider ``key`` declares, gathered and cross-checked.

        Raises :class:`~connector_core.UnknownNameError` for an unknown key and
        :class:`~connector_core.PluginError` naming the plugin when a hook fails
        or a declaration is invalid.
        """
        found = self._declarations.get(key)
        if found is not None:
            return found
        with self._lock:
            if key in self._declarations:
                return self._declarations[key]
            if key in self._broken:
                raise self._broken[key]
            provider, plugin = self._owner(key)
            try:
                declaration = self._gather(provider, plugin)
            except PluginError as exc:
                self._broken[key] = exc
                self._problems.append(LoadProblem(exc.plugin, _strip_plugin(exc, exc.plugin)))
                raise
            self._declarations[key] = declaration
            return declaration

    def declarations(self) -> tuple[ProviderDeclaration, ...]:
        """Declarations of every provider that gathers cleanly (others become problems)."""
        found = []
        for key in self.provider_keys():
            try:
                found.append(self.declaration(key))
            except PluginError:
                continue
        return tuple(found)

    def scope_catalogue(self, key: str) -> ScopeCatalogue | None:
        """Provider ``key``'s scope catalogue, asking only the scope hook.

        Cheaper than :meth:`declaration` when only scopes matter (``connector scopes``):
        the other hooks are not called and their records' classes are not built. The
        catalogue validates itself; cross-checks against actions and the connection
        test are :meth:`declaration`'s.
        """
        if key in self._declarations:
            return self._declarations[key].scope_catalogue
        if key in self._broken:
            raise self._broken[key]
        self._owner(key)  # an unknown or doubly registered key fails here, as in declaration()
        # on first use, for cold start: these records are built when first imported
        from .models import ScopeCatalogue

        try:
            return self._ask("connector_core_scope_catalogue", key, ScopeCatalogue)
        except PluginError as exc:
            self._problems.append(LoadProblem(exc.plugin, _strip_plugin(exc, exc.plugin)))
            raise

    def _gather(self, provider: Provider, plugin: str) -> ProviderDeclaration:
        # on first use, for cold start: these records are built when first imported
        from .models import (
            AUTH_TYPE_CLASSES,
            Action,
            Callback,
            ConnectionTest,
            CredentialField,
            Environment,
            Procedure,
            ProviderDeclaration,
            ReconnectPolicy,
            ScopeCatalogue,
            SetupGuide,
        )

        key = provider.key
        auth_types = self._ask_many("connector_core_auth_types", key, AUTH_TYPE_CLASSES, required=True)
        environments = self._ask_many("connector_core_environments", key, Environment, required=True)
        fields = self._ask_many("connector_core_credential_fields", key, CredentialField)
        actions = self._ask_many("connector_core_actions", key, Action)
        checklist = self._ask_many("connector_core_connect_checklist", key, Procedure)
        try:
            return ProviderDeclaration(
                provider=provider,
                plugin=plugin,
                auth_types=auth_types,
                credential_fields=fields,
                environments=environments,
                scope_catalogue=self._ask("connector_core_scope_catalogue", key, ScopeCatalogue),
                callback=self._ask("connector_core_callback", key, Callback),
                reconnect_policy=self._ask("connector_core_reconnect_policy", key, ReconnectPolicy),
                connection_test=self._ask("connector_core_connection_test", key, ConnectionTest),
                actions=actions,
                setup_guide=self._ask("connector_core_setup_guide", key, SetupGuide),
                connect_checklist=checklist,
            )
        except DeclarationError as exc:
            raise PluginError(plugin, f"provider {key!r}: {exc.message}") from None

    def _call(self, hook_name: str, **kwargs: Any) -> Any:
        caller: pluggy.HookCaller = getattr(self._pm.hook, hook_name)
        try:
            return caller(**kwargs)
        except DataFileError as exc:  # names its file, line and field already
            raise PluginError(_culprit(caller, exc.__traceback__), exc.message) from None
        except ConnectorError as exc:
            culprit = _culprit(caller, exc.__traceback__)
            raise PluginError(culprit, f"{hook_name}: {_strip_plugin(exc, culprit)}") from None
        except Exception as exc:
            culprit = _culprit(caller, exc.__traceback__)
            raise PluginError(culprit, f"{hook_name} raised {_describe(exc)}") from None

    def _answerer(self, hook_name: str, kwargs: Mapping[str, Any]) -> str:
        """Which plugin gave the first non-None answer (slow path, for error messages)."""
        caller: pluggy.HookCaller = getattr(self._pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                result = impl.function(*(kwargs[a] for a in impl.argnames))
            except Exception:
                return impl.plugin_name
            if result is not None:
                return impl.plugin_name
        return "unknown plugin"

    def _ask(self, hook_name: str, key: str, kind: type[_T]) -> _T | None:
        result = self._call(hook_name, provider_key=key)
        if result is not None and not isinstance(result, kind):
            culprit = self._answerer(hook_name, {"provider_key": key})
            raise PluginError(
                culprit,
                f"{hook_name} for provider {key!r} returned {type(result).__name__}; expected {kind.__name__} or None",
            )
        return result

    def _ask_many(
        self, hook_name: str, key: str, kind: type | tuple[type, ...], *, required: bool = False
    ) -> tuple[Any, ...]:
        result = self._call(hook_name, provider_key=key)
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        if result is None:
            if required:
                raise PluginError(
                    self.plugin_of(key), f"provider {key!r} does not implement {hook_name} (it is required)"
                )
            return ()
        if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
            culprit = self._answerer(hook_name, {"provider_key": key})
            raise PluginError(
                culprit,
                f"{hook_name} for provider {key!r} returned {type(result).__name__}; expected a list of {names}",
            )
        items = tuple(result)
        for item in items:
            if not isinstance(item, kind):
                culprit = self._answerer(hook_name, {"provider_key": key})
                raise PluginError(
                    culprit,
                    f"{hook_name} for provider {key!r} returned a list holding {type(item).__name__}; expected {names}",
                )
        return items

    def identity(self, key: str, token_response: Mapping[str, Any]) -> dict[str, str]:
        """The provider-specific identity in a token response (``{}`` when none)."""
        answer = self._call("connector_core_identity", provider_key=key, token_response=token_response)
        if answer is None:
            return {}
        if not isinstance(answer, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in answer.items()
        ):
            culprit = self._answerer("connector_core_identity", {"provider_key": key, "token_response": token_response})
            raise PluginError(culprit, f"connector_core_identity for provider {key!r} must return a str-to-str mapping")
        return dict(answer)

    def emulator_spec(self, key: str) -> Any:
        """How the built-in emulator imitates provider ``key`` (an
        :class:`~connector_core.emulator.EmulatorSpec`), or ``None``."""
        self._owner(key)
        from .emulator.spec import EmulatorSpec  # on first use, for cold start: building its records costs ~10 ms

        return self._ask("connector_core_emulator", key, EmulatorSpec)

    # ------------------------------------------------------------- platform hooks

    def callback_url(self, key: str, environment: str | None = None, *, base_url: str | None = None) -> str:
        """The full OAuth callback URL for provider ``key``.

        The base URL is, in order: ``base_url``; a plugin's
        ``connector_core_callback_base_url`` (the built-in one reads
        ``CONNECTOR_CALLBACK_BASE_URL``); the provider's declared default.
        """
        declaration = self.declaration(key)
        env = declaration.environment(environment)
        if declaration.callback is None:
            raise ValidationError("callback", f"provider {key!r} declares no OAuth callback")
        if base_url is None:
            answer = self._call("connector_core_callback_base_url", provider_key=key, environment=env.key)
            if answer is not None and not isinstance(answer, str):
                culprit = self._answerer(
                    "connector_core_callback_base_url", {"provider_key": key, "environment": env.key}
                )
                raise PluginError(
                    culprit, f"connector_core_callback_base_url returned {type(answer).__name__}; expected a string"
                )
            base_url = answer or declaration.callback.default_base_url
        if base_url is None:
            raise ValidationError(
                "callback base URL",
                f"provider {key!r} has no default; set CONNECTOR_CALLBACK_BASE_URL to your platform's public URL",
            )
        return declaration.callback.url(base_url)

    def register_commands(self, reserved: Iterable[str]) -> tuple[Any, ...]:
        """Commands that plugins add to the CLI (see :class:`~connector_core.CommandRegistry`)."""
        self.load_all()
        caller = self._pm.hook.connector_core_register_commands
        if not caller.get_hookimpls():
            return ()
        registry = CommandRegistry(frozenset(reserved))
        # Registration order: the first plugin to add a name keeps it.
        for impl in caller.get_hookimpls():
            try:
                impl.function(*([registry.for_plugin(impl.plugin_name)] if impl.argnames else []))
            except ConnectorError as exc:
                self._problems.append(LoadProblem(impl.plugin_name, _strip_plugin(exc, impl.plugin_name)))
            except Exception as exc:
                self._problems.append(
                    LoadProblem(impl.plugin_name, f"connector_core_register_commands raised {_describe(exc)}")
                )
        return registry.commands

    # ------------------------------------------------------------------ insight

    @property
    def problems(self) -> tuple[LoadProblem, ...]:
        """Everything wrong with the installed plugins: load failures, bad hooks,
        duplicate keys (imports every plugin not imported yet)."""
        self.load_all()
        self._registered()
        return tuple(self._problems)

    @property
    def problems_so_far(self) -> tuple[LoadProblem, ...]:
        """Problems of the plugins imported so far (imports nothing more)."""
        self._registered()
        return tuple(self._problems)

    def _dist_info(self, name: str) -> tuple[str | None, str | None]:
        dist = self._distributions.get(name)
        if dist is None:
            return None, None
        if isinstance(dist, tuple):
            return dist
        return dist.name, dist.version

    def plugin_infos(self) -> tuple[PluginInfo, ...]:
        """One entry per plugin: loaded ones with their hooks, failed ones with their error."""
        self.load_all()
        registered = self._registered()
        for key, (_, owner) in registered.items():
            if owner.startswith(DATA_PREFIX):  # a file's problems show only once it is read whole
                with contextlib.suppress(ConnectorError):
                    self.declaration(key)
        infos: list[PluginInfo] = []
        errors: dict[str, list[str]] = {}
        for problem in self._problems:
            errors.setdefault(problem.plugin, []).append(problem.message)
        seen: set[str] = set()
        for name, plugin in sorted(self._pm.list_name_plugin()):
            if plugin is None:
                continue
            seen.add(name)
            hooks = sorted(c.name for c in self._pm.get_hookcallers(plugin) or ())
            dist_name, version = self._dist_info(name)
            if name == BUILTIN_PLUGIN_NAME:
                dist_name, version = "connector-core", __version__
            path = None
            if isinstance(plugin, DataProvider):
                path = plugin.path
                if plugin.origin is not None:
                    dist_name, version = self._dist_info(plugin.origin)
                    if plugin.origin == BUILTIN_PLUGIN_NAME:
                        dist_name, version = "connector-core", __version__
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=dist_name,
                    version=version,
                    hooks=tuple(hooks),
                    providers=tuple(k for k, (_, owner) in registered.items() if owner == name),
                    error="; ".join(errors[name]) if name in errors else None,
                    path=path,
                )
            )
        for name, messages in sorted(errors.items()):
            if name not in seen:
                dist_name, version = self._dist_info(name)
                infos.append(
                    PluginInfo(
                        name=name,
                        distribution=dist_name,
                        version=version,
                        hooks=(),
                        providers=(),
                        error="; ".join(messages),
                    )
                )
        return tuple(infos)


def _strip_plugin(exc: ConnectorError, plugin: str) -> str:
    prefix = f"plugin {plugin!r}: "
    return exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message
