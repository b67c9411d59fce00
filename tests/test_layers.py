"""The import rules that keep the layers apart (ARCHITECTURE.md "Import rules")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]

CRYPTO = {"cryptography", "x3dh", "doubleratchet", "xeddsa", "hashlib", "hmac", "secrets"}
QT = {"PySide6", "qasync", "shiboken6"}
IO = {
    "socket",
    "asyncio",
    "websockets",
    "sqlite3",
    "sqlcipher3",
    "aiosqlite",
    "ssl",
    "http",
    "urllib",
}

RULES: dict[str, set[str]] = {
    "shared": IO | QT | {"relay", "client"},
    "relay": QT | {"client"},
    "client/core": QT | {"relay"},
    "client/gui": CRYPTO | {"relay", "shared.session", "shared.identity", "shared.password"},
    "client": {"relay"},
}


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def violations(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path.read_text()):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_layers_import_only_what_they_may():
    problems = [v for package, forbidden in RULES.items() for v in violations(package, forbidden)]
    assert problems == []


def test_the_checker_sees_every_kind_of_import():
    source = "import PySide6.QtCore\nfrom websockets.asyncio import client\nfrom . import x\n"
    assert imported_modules(source) == {"PySide6.QtCore", "websockets.asyncio"}
