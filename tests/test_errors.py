"""engine/errors.py: the tree at the top of the module is the class tree, and every error of
ours lives there (the sink's delivery error too, still importable from the sink contract)."""

from __future__ import annotations

import inspect
import re

import engine.errors as errors
import engine.plugins as plugins
import engine.sinks.base as sinks_base


def _tree() -> dict[str, str | None]:
    """Each class named in the module docstring's tree, with the parent it is drawn under."""
    doc = errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        match = re.match(r"^    ((?:[| ]   )*)(?:\+-- )?([A-Z]\w+)\s{2,}\S", line)
        if not match:
            continue
        depth = len(match.group(1)) // 4 + (1 if "+--" in line else 0)
        del stack[depth:]
        parents[match.group(2)] = stack[-1] if stack else None
        stack.append(match.group(2))
    return parents


def test_the_tree_at_the_top_is_the_class_tree() -> None:
    ours = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, errors.TriggerbookError)
    }
    drawn = _tree()
    assert set(drawn) == set(ours)
    for name, parent in drawn.items():
        cls = ours[name]
        expected = None if cls is errors.TriggerbookError else cls.__bases__[0].__name__
        assert parent == expected, name
        assert cls.__doc__ and cls.__doc__.strip(), f"{name} has no docstring"


def test_the_sink_delivery_error_is_ours_and_still_where_sinks_import_it() -> None:
    assert plugins.DeliveryFailed is errors.DeliveryFailed
    assert sinks_base.DeliveryFailed is errors.DeliveryFailed  # the old path, kept for now
    assert issubclass(errors.DeliveryFailed, errors.TriggerbookError)
    assert not issubclass(errors.DeliveryFailed, errors.FeedError | errors.StoreError)
