"""The docs name tests that exist: every `tests/…py` and `tests/…py::test_name` cited in the
README's and PROTOCOL.md's claim tables points at a real file and function (a renamed test must
not leave a claim pointing at nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"`(tests/[\w/]+\.py)?(::\w+)?`")


def _citations(doc: Path) -> list[tuple[str, str | None]]:
    found, current = [], None
    for match in CITATION.finditer(doc.read_text()):
        path, name = match.group(1), match.group(2)
        if path:
            current = path
        if current is not None and (path or name):
            found.append((current, name[2:] if name else None))
    return found


@pytest.mark.parametrize("doc", ["README.md", "shared/PROTOCOL.md"])
def test_every_cited_test_exists(doc: str) -> None:
    citations = _citations(ROOT / doc)
    assert citations, f"{doc} cites no tests"
    missing = [
        f"{path}::{name}" if name else path
        for path, name in citations
        if not (ROOT / path).exists()
        or (name is not None and f"def {name}(" not in (ROOT / path).read_text())
    ]
    assert not missing, f"{doc} cites tests that do not exist: {missing}"
