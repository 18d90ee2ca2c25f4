"""docs/plugins.md: the complete example plugin and its tests run as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import trio

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(\w*)\n(.*?)```", DOC.read_text(), re.S)


async def test_the_guide_example_passes_its_own_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = _blocks()
    module_src = next(b for lang, b in blocks if lang == "python" and "class Acme(Exchange)" in b)
    tests_src = next(b for lang, b in blocks if lang == "python" and "def read_request" in b)
    frames = next(b for lang, b in blocks if lang == "" and b.startswith("# From"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "acme.jsonl").write_text(frames)

    module = types.ModuleType("triggerbook_acme")
    monkeypatch.setitem(sys.modules, "triggerbook_acme", module)  # before exec: msgspec looks
    exec(compile(module_src, "triggerbook_acme", "exec"), module.__dict__)  # annotations up there
    namespace: dict[str, object] = {"__file__": str(tmp_path / "test_acme.py")}
    exec(compile(tests_src, "test_acme", "exec"), namespace)

    namespace["test_parse_is_exact"]()  # type: ignore[operator]
    namespace["test_bad_frames"]()  # type: ignore[operator]
    with trio.fail_after(20):
        await namespace["test_the_runner_conversation"]()  # type: ignore[operator]
