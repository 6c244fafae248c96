"""The architecture's import rules (DESIGN.md), checked on the source rather than trusted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fhir_server"
WEB = ("fastapi", "starlette", "uvicorn")
STORES = ("pymongo", "sqlite3", "fhir_server.store.sqlite", "fhir_server.store.mongo")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, by its dotted name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules_in(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def uses(imported: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {name for name in imported for prefix in prefixes
            if name == prefix or name.startswith(prefix + ".")}


@pytest.mark.parametrize("path", modules_in("scheduling") + modules_in("fhir"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_layers_import_no_web_framework_and_no_store(path: Path) -> None:
    imported = imports_of(path)
    assert not uses(imported, WEB + STORES + ("fhir_server.services", "fhir_server.api"))


@pytest.mark.parametrize("path", modules_in("services"), ids=lambda p: p.name)
def test_services_know_no_http(path: Path) -> None:
    assert not uses(imports_of(path), WEB + ("fhir_server.api",))


@pytest.mark.parametrize("path", modules_in("api"), ids=lambda p: p.name)
def test_routers_never_talk_to_the_store(path: Path) -> None:
    store_access = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Attribute) and node.attr == "store"]
    assert not uses(imports_of(path), STORES)
    assert not store_access, f"store used directly at lines {store_access}"
