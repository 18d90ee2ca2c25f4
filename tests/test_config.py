"""engine/config.py: defaults, the file, environment overrides, and every rejection."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import CORE_SCHEMA, env_name, load_config
from engine.errors import ConfigError

FEEDS = {
    "feeds.binance": {
        "enabled": True,
        "url": "wss://stream.binance.com:9443",
        "stale_after_s": 60.0,
    },
    "feeds.replay": {"enabled": False, "file": ""},
    "sinks.console": {"enabled": True},  # sinks declare their tables like feeds
    "sinks.email": {"enabled": False, "port": 25, "starttls": False},  # some of EmailSink's keys
}
REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_empty_file_gives_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={}, plugin_sections=FEEDS)
    assert config.http.host == "127.0.0.1"
    assert config.http.port == 8000
    assert config.database.url == ""
    assert config.database.data_dir == Path("var/pg")
    assert config.auth.access_ttl_s == 900
    assert config.auth.refresh_ttl_s == 604800
    assert config.feeds["binance"]["url"] == "wss://stream.binance.com:9443"
    assert config.enabled_feeds() == ["binance"]
    assert config.enabled_sinks() == ["console"]
    assert config.sinks["email"]["port"] == 25


def test_repository_config_holds_every_design_key_at_its_default() -> None:
    from engine.plugins.registry import load_registry

    sections = load_registry(entry_points=False).sections()  # the built-in feeds' real options
    config = load_config(REPO_CONFIG, environ={}, plugin_sections=sections)
    for section, defaults in {**CORE_SCHEMA, **sections}.items():
        for key, default in defaults.items():
            if key == "stale_after_s":
                continue  # a plugin option, not written in the file
            assert config.raw[section][key] == default, (section, key)


def test_missing_default_file_means_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={}, plugin_sections=FEEDS)
    assert config.source == "<defaults>"
    assert config.http.port == 8000


def test_file_values_override_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[http]\nport = 9001\n[feeds.binance]\nurl = "ws://127.0.0.1:1"\nstale_after_s = 5\n'
        "[sinks.email]\nenabled = true\n",
    )
    config = load_config(path, environ={}, plugin_sections=FEEDS)
    assert config.http.port == 9001
    assert config.feeds["binance"]["url"] == "ws://127.0.0.1:1"
    assert config.feeds["binance"]["stale_after_s"] == 5.0  # an int is fine where a float goes
    assert isinstance(config.feeds["binance"]["stale_after_s"], float)
    assert config.enabled_sinks() == ["console", "email"]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 9001\n")
    environ = {
        "TRIGGERBOOK_HTTP_PORT": "9002",
        "TRIGGERBOOK_DATABASE_URL": "postgresql://u@h/db",
        "TRIGGERBOOK_FEEDS_BINANCE_ENABLED": "false",
        "TRIGGERBOOK_AUTH_ACCESS_TTL_S": "60",
        "TRIGGERBOOK_FEEDS_BINANCE_STALE_AFTER_S": "2.5",
    }
    config = load_config(path, environ=environ, plugin_sections=FEEDS)
    assert config.http.port == 9002
    assert config.database.url == "postgresql://u@h/db"
    assert config.enabled_feeds() == []
    assert config.auth.access_ttl_s == 60
    assert config.feeds["binance"]["stale_after_s"] == 2.5


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 7000\n")
    config = load_config(environ={"TRIGGERBOOK_CONFIG": str(path)}, plugin_sections=FEEDS)
    assert config.http.port == 7000
    assert config.source == str(path)


def test_env_name_flattens_sections() -> None:
    assert env_name("feeds.binance", "url") == "TRIGGERBOOK_FEEDS_BINANCE_URL"
    assert env_name("auth", "access_ttl_s") == "TRIGGERBOOK_AUTH_ACCESS_TTL_S"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[http]\nprot = 1\n", ["unknown key 'prot'", "[http]"]),
        ("[htp]\nport = 1\n", ["unknown section [htp]"]),
        ("[feeds.nasdaq]\nenabled = true\n", ["unknown section [feeds.nasdaq]"]),
        ('[http]\nport = "8000"\n', ["[http] port must be an integer", "'8000'"]),
        ("[http]\nport = true\n", ["[http] port must be an integer"]),
        ("[sinks.console]\nenabled = 1\n", ["[sinks.console] enabled must be a boolean"]),
        ('[feeds.binance]\nstale_after_s = "x"\n', ["stale_after_s must be a number"]),
        ("http = 3\n", ["top-level key 'http' must be a [section]"]),
        ("[feeds]\nbinance = 3\n", ["feeds.binance must be a [feeds.binance] table"]),
        ("[http\n", ["invalid TOML"]),
    ],
)
def test_bad_file_names_the_key_and_the_file(tmp_path: Path, text: str, words: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={}, plugin_sections=FEEDS)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TRIGGERBOOK_HTTP_PORT", "eighty", "[http] port must be an integer"),
        ("TRIGGERBOOK_SINKS_EMAIL_STARTTLS", "maybe", "[sinks.email] starttls must be a boolean"),
        ("TRIGGERBOOK_FEEDS_BINANCE_STALE_AFTER_S", "soon", "stale_after_s must be a number"),
    ],
)
def test_bad_environment_names_the_variable(
    tmp_path: Path, name: str, value: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ""), environ={name: value}, plugin_sections=FEEDS)
    assert name in str(info.value)
    assert words in str(info.value)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", environ={}, plugin_sections=FEEDS)


@pytest.mark.parametrize("text", ["yes", "TRUE", "1", "on"])
def test_environment_booleans(tmp_path: Path, text: str) -> None:
    config = load_config(
        write(tmp_path, ""),
        environ={"TRIGGERBOOK_SINKS_EMAIL_ENABLED": text},
        plugin_sections=FEEDS,
    )
    assert config.sinks["email"]["enabled"] is True


def test_delivery_retries_are_configured_and_checked(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={}, plugin_sections=FEEDS)
    assert (config.delivery.retry_base_s, config.delivery.retry_cap_s) == (5.0, 21600.0)
    path = write(tmp_path, "[delivery]\nretry_base_s = 0.05\n")
    assert load_config(path, environ={}, plugin_sections=FEEDS).delivery.retry_base_s == 0.05
    for bad in ("0", "-1", "nan", "inf"):
        path = write(tmp_path, f"[delivery]\nretry_cap_s = {bad}\n")
        with pytest.raises(ConfigError, match=r"\[delivery\] retry_cap_s must be a number > 0"):
            load_config(path, environ={}, plugin_sections=FEEDS)
