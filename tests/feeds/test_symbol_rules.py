"""Symbol rules per exchange: what the OpenAPI document states is what ``normalise`` accepts.

For every loaded exchange (the built-ins and the plugin packages installed beside them),
``FeedRegistry.symbol_pattern`` is the regex a request's symbol must match; the properties below
hold it to its word: every string it matches (within ``SYMBOL_MAX``) is accepted and spelt as
``canonical_pattern`` says, every other string is refused with a reason, a canonical spelling is
its own normal form, and the patterns mean the same in ECMA-262 (checked with node when present).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.limits import SYMBOL_MAX
from engine.plugins.registry import load_registry

REGISTRY = load_registry()
NAMES = REGISTRY.names()


def accepts(exchange: str, text: str) -> str | None:
    try:
        return REGISTRY.normalise(exchange, text)
    except ValueError:
        return None


@pytest.mark.parametrize("exchange", NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_string_the_pattern_allows_is_accepted(exchange: str, data: st.DataObject) -> None:
    pattern = REGISTRY.symbol_pattern(exchange)
    text = data.draw(st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= SYMBOL_MAX))
    spelt = REGISTRY.normalise(exchange, text)
    assert re.fullmatch(REGISTRY.canonical_pattern(exchange), spelt), (text, spelt)
    assert len(spelt) <= SYMBOL_MAX
    assert REGISTRY.normalise(exchange, spelt) == spelt  # the stored spelling is its own normal


# Text near the patterns: their characters, separators, spaces, odd code points.
NEAR = st.text(
    alphabet=st.sampled_from("abcXYZ019/_-:. \t\nÜß€\x00") | st.characters(), max_size=40
)


@pytest.mark.parametrize("exchange", NAMES)
@settings(max_examples=150, deadline=None)
@given(text=NEAR)
def test_nothing_else_is_accepted(exchange: str, text: str) -> None:
    allowed = len(text) <= SYMBOL_MAX and re.fullmatch(REGISTRY.symbol_pattern(exchange), text)
    if allowed:
        assert accepts(exchange, text) is not None
    else:
        with pytest.raises(ValueError, match=f"not a symbol of {exchange}"):
            REGISTRY.normalise(exchange, text)


@pytest.mark.parametrize("exchange", NAMES)
def test_patterns_use_only_the_common_regex_subset(exchange: str) -> None:
    for pattern in (REGISTRY.symbol_pattern(exchange), REGISTRY.canonical_pattern(exchange)):
        assert pattern.startswith("^") and pattern.endswith("$")
        for construct in ("(?=", "(?!", "(?<", "(?P", "\\d", "\\w", "\\s", "\\b", "(?i"):
            assert construct not in pattern, (exchange, construct)


SAMPLES = [
    "BTCUSDT", "btc/usdt", "BTC-USD", "xbt", "XBT/USD", "BINANCE:BTCUSDT", "OANDA:EUR_USD",
    "BRK.B", "IC MARKETS:1", "BTC-USDT-SWAP", "a", "", " BTC", "BTC\n", "A" * 33, "btc usd",
    "1000SATSUSDT", "BTC--USD", "DOGE/EUR", "eth.btc",
]  # fmt: skip


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_patterns_mean_the_same_in_ecma_262() -> None:
    cases = {
        name: [REGISTRY.symbol_pattern(name), REGISTRY.canonical_pattern(name)] for name in NAMES
    }
    script = (
        "const {cases, samples} = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const out = {};"
        "for (const [name, patterns] of Object.entries(cases)) {"
        "  out[name] = patterns.map(p => samples.map(s => new RegExp(p, 'u').test(s)));"
        "}"
        "process.stdout.write(JSON.stringify(out));"
    )
    run = subprocess.run(
        ["node", "-e", script],
        input=json.dumps({"cases": cases, "samples": SAMPLES}),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    verdicts = json.loads(run.stdout)
    for name, patterns in cases.items():
        for pattern, ecma in zip(patterns, verdicts[name], strict=True):
            python = [re.fullmatch(pattern, s) is not None for s in SAMPLES]
            assert ecma == python, (name, pattern)


def test_the_issues_symbols() -> None:
    # Finnhub's documented spellings, refused before by the web's generic regex.
    for text in ("BINANCE:BTCUSDT", "OANDA:EUR_USD", "BRK.B"):
        assert REGISTRY.normalise("finnhub", text) == text
    # Kraken's "xbt" was stored as "BTC": a pair needs its quote.
    with pytest.raises(ValueError, match="without a quote currency"):
        REGISTRY.normalise("kraken", "xbt")
    assert REGISTRY.normalise("kraken", "xbtusd") == "BTC/USD"
    assert REGISTRY.normalise("okx", "btc-usdt-swap") == "BTC-USDT-SWAP"
    assert REGISTRY.normalise("coinbase", "btc-usd") == "BTC-USD"
    assert REGISTRY.normalise("binance", "btc/usdt") == "BTCUSDT"
    with pytest.raises(KeyError):
        REGISTRY.symbol_pattern("nasdaq")
