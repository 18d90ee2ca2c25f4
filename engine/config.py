"""The engine's configuration: a TOML file, every key defaulted, environment overrides on top.

The schema is the set of defaults below plus the tables that plugins contribute (each feed and
sink plugin declares its own keys), so a misspelt key or a value of the wrong type is rejected at
start with a message naming the key and where it came from, rather than silently ignored.

An environment variable ``TRIGGERBOOK_<SECTION>_<KEY>`` (dots in the section become underscores,
all upper case) overrides a key, e.g. ``TRIGGERBOOK_DATABASE_URL`` or
``TRIGGERBOOK_FEEDS_BINANCE_URL``. Its text is parsed as the key's type.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import ConfigError

ENV_PREFIX = "TRIGGERBOOK_"
DEFAULT_PATH = Path("config.toml")

# Section name -> key -> default. The type of each default is the type the key must have.
CORE_SCHEMA: Mapping[str, Mapping[str, Any]] = {
    "http": {
        "host": "127.0.0.1",
        "port": 8000,
        "max_connections": 1000,
        "head_timeout_s": 10.0,
        "body_timeout_s": 10.0,
        "keep_alive_s": 5.0,
        "send_timeout_s": 10.0,
    },
    "database": {"url": "", "data_dir": "var/pg", "start_timeout_s": 30.0},
    "auth": {
        "secret": "",
        "access_ttl_s": 900,
        "refresh_ttl_s": 604800,
        "register_per_hour": 20,
        "register_global_per_hour": 1000,
    },
    "limits": {"max_live_alerts": 1000, "max_symbols": 100},
    "delivery": {"retry_base_s": 5.0, "retry_cap_s": 21600.0},
}

# Tables whose sub-tables are sections of their own ("feeds.binance", "sinks.email").
GROUPS = ("feeds", "sinks")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where the API listens, and how long and how many connections it holds (``web/listener.py``):
    at most ``max_connections`` at once (past it, accepting waits); a new connection's request head
    must be complete within ``head_timeout_s``, a request's body within ``body_timeout_s`` (else
    408), and an idle keep-alive connection is closed after ``keep_alive_s``. A write to a client
    must be taken within ``send_timeout_s``, else the connection is closed: a client that stops
    reading cannot hold it, its slot, or the engine's shutdown."""

    host: str
    port: int
    max_connections: int = 1000
    head_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    send_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str
    data_dir: Path
    start_timeout_s: float = 30.0  # how long open_store retries an unreachable server at start


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Token lifetimes and the signing secret; registrations admitted per client address and
    in all within an hour (past either: 429 with ``Retry-After``, ``web/auth.py``)."""

    secret: str
    access_ttl_s: int
    refresh_ttl_s: int
    register_per_hour: int = 20
    register_global_per_hour: int = 1000


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Per-user limits on creates (a create past one is a 409 naming it): live alerts, and
    distinct live (exchange, symbol) pairs (each one a subscription some feed keeps open)."""

    max_live_alerts: int = 1000
    max_symbols: int = 100


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """How every sink's failed notifications are retried (``engine/sinks/delivery.py``): after
    a full-jitter delay drawn below ``retry_base_s * 2**(attempts - 1)``, capped at
    ``retry_cap_s``; each sink's ``max_attempts`` ends it."""

    retry_base_s: float = 5.0
    retry_cap_s: float = 21600.0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, validated; ``feeds`` and ``sinks`` map a plugin name to a table."""

    http: HttpConfig
    database: DatabaseConfig
    auth: AuthConfig
    feeds: Mapping[str, Mapping[str, Any]]
    sinks: Mapping[str, Mapping[str, Any]]
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    source: str = "<defaults>"
    raw: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    def enabled_feeds(self) -> list[str]:
        """Names of the feeds whose table says ``enabled = true``, in name order."""
        return sorted(name for name, table in self.feeds.items() if table.get("enabled"))

    def enabled_sinks(self) -> list[str]:
        """Names of the sinks whose table says ``enabled = true``, in name order."""
        return sorted(name for name, table in self.sinks.items() if table.get("enabled"))


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    plugin_sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Read, merge and validate the configuration.

    ``path`` defaults to ``$TRIGGERBOOK_CONFIG`` or ``config.toml``; a default path that does not
    exist means "all defaults", an explicit one that does not exist is an error.
    ``plugin_sections`` adds the sections that loaded plugins declare (``"feeds.binance": {...}``).

    Raises :class:`ConfigError` for an unreadable file, invalid TOML, an unknown section or key,
    or a value (in the file or the environment) of the wrong type.
    """
    environ = os.environ if environ is None else environ
    explicit = path is not None or "TRIGGERBOOK_CONFIG" in environ
    file = Path(path if path is not None else environ.get("TRIGGERBOOK_CONFIG", DEFAULT_PATH))
    schema = {**CORE_SCHEMA, **(plugin_sections or {})}

    data: dict[str, Any] = {}
    source = str(file)
    if file.exists() or explicit:
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read the configuration: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    else:
        source = "<defaults>"

    merged = {section: dict(defaults) for section, defaults in schema.items()}
    for section, table in _sections(data, source):
        if section not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{source}: unknown section [{section}] (known: {known})")
        for key, value in table.items():
            merged[section][key] = _check(schema[section], section, key, value, source)

    for section, defaults in schema.items():
        for key in defaults:
            name = env_name(section, key)
            if name in environ:
                merged[section][key] = _parse_env(defaults[key], section, key, environ[name], name)

    frozen = {s: MappingProxyType(t) for s, t in merged.items()}
    return Config(
        http=_http(merged["http"], source),
        database=DatabaseConfig(
            url=merged["database"]["url"],
            data_dir=Path(merged["database"]["data_dir"]),
            start_timeout_s=merged["database"]["start_timeout_s"],
        ),
        auth=_auth(merged["auth"], source),
        limits=_limits(merged["limits"], source),
        delivery=_delivery(merged["delivery"], source),
        feeds=_group(frozen, "feeds"),
        sinks=_group(frozen, "sinks"),
        source=source,
        raw=MappingProxyType(frozen),
    )


def _auth(table: Mapping[str, Any], source: str) -> AuthConfig:
    for key in ("register_per_hour", "register_global_per_hour"):
        if table[key] < 1:
            raise ConfigError(f"{source}: [auth] {key} must be at least 1, got {table[key]}")
    return AuthConfig(**table)


def _http(table: Mapping[str, Any], source: str) -> HttpConfig:
    for key, value in table.items():
        if key.endswith("_s") and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{source}: [http] {key} must be a number > 0, got {value}")
    if table["max_connections"] < 1:
        raise ConfigError(f"{source}: [http] max_connections must be at least 1")
    return HttpConfig(**table)


def _limits(table: Mapping[str, Any], source: str) -> LimitsConfig:
    for key, value in table.items():
        if value < 1:
            raise ConfigError(f"{source}: [limits] {key} must be at least 1, got {value}")
    return LimitsConfig(**table)


def _delivery(table: Mapping[str, Any], source: str) -> DeliveryConfig:
    for key, value in table.items():
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{source}: [delivery] {key} must be a number > 0, got {value}")
    return DeliveryConfig(**table)


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides ``[section] key``."""
    return f"{ENV_PREFIX}{section.replace('.', '_')}_{key}".upper()


def _sections(data: Mapping[str, Any], source: str) -> list[tuple[str, Mapping[str, Any]]]:
    """Flatten ``{"feeds": {"binance": {...}}}`` into ``[("feeds.binance", {...})]``."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: top-level key {name!r} must be a [section]")
        if name in GROUPS:
            for sub, subtable in table.items():
                if not isinstance(subtable, dict):
                    raise ConfigError(f"{source}: {name}.{sub} must be a [{name}.{sub}] table")
                out.append((f"{name}.{sub}", subtable))
        else:
            out.append((name, table))
    return out


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _check(defaults: Mapping[str, Any], section: str, key: str, value: Any, source: str) -> Any:
    if key not in defaults:
        known = ", ".join(sorted(defaults))
        raise ConfigError(f"{source}: unknown key {key!r} in [{section}] (known: {known})")
    want = type(defaults[key])
    if want is float and type(value) is int:
        return float(value)
    if type(value) is not want:
        raise ConfigError(
            f"{source}: [{section}] {key} must be {_type_name(defaults[key])}, "
            f"got {_type_name(value)} {value!r}"
        )
    return value


def _parse_env(default: Any, section: str, key: str, text: str, name: str) -> Any:
    want = type(default)
    try:
        if want is bool:
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if want is int:
            return int(text)
        if want is float:
            return float(text)
    except ValueError:
        raise ConfigError(
            f"environment {name}: [{section}] {key} must be {_type_name(default)}, got {text!r}"
        ) from None
    return text


def _group(
    sections: Mapping[str, Mapping[str, Any]], group: str
) -> Mapping[str, Mapping[str, Any]]:
    prefix = group + "."
    return MappingProxyType(
        {name[len(prefix) :]: table for name, table in sections.items() if name.startswith(prefix)}
    )
