"""The [limits] section: defaults, the file, environment overrides, and values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import LimitsConfig, load_config
from engine.errors import ConfigError


def test_limits_default_and_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty, environ={}).limits == LimitsConfig(1000, 100)
    file = tmp_path / "limits.toml"
    file.write_text("[limits]\nmax_live_alerts = 50\n")
    assert load_config(file, environ={}).limits == LimitsConfig(50, 100)
    env = {"TRIGGERBOOK_LIMITS_MAX_SYMBOLS": "7"}
    assert load_config(file, environ=env).limits == LimitsConfig(50, 7)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[limits]\nmax_symbols = 0\n", {}, "max_symbols must be at least 1"),
        ("[limits]\nmax_live_alerts = '9'\n", {}, "max_live_alerts must be an integer"),
        ("[limits]\nmax_alerts = 9\n", {}, "unknown key 'max_alerts'"),
        ("", {"TRIGGERBOOK_LIMITS_MAX_LIVE_ALERTS": "many"}, "must be an integer"),
        ("", {"TRIGGERBOOK_LIMITS_MAX_LIVE_ALERTS": "-1"}, "at least 1"),
    ],
)
def test_a_bad_limit_is_refused_at_start(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    file = tmp_path / "config.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(file, environ=env)
