"""Old home of the exchange contract, kept so that existing plugins still import; use
:mod:`engine.plugins` (the plugin face) or :mod:`engine.plugins.exchange` instead."""

from __future__ import annotations

from engine.plugins.exchange import (
    GENERIC_INPUT,
    GENERIC_RULE,
    GENERIC_SYMBOL,
    Exchange,
    SymbolRules,
    any_case,
)

__all__ = ["GENERIC_INPUT", "GENERIC_RULE", "GENERIC_SYMBOL", "Exchange", "SymbolRules", "any_case"]
