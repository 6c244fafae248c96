"""Every third-party package the server imports is a runtime dependency, not only a dev one.

`make run` and the Docker image install without the dev extras, so an import satisfied only
by a test dependency works in `make test` and breaks in production.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_top_level_modules() -> set[str]:
    """Top-level names of every module `fhir_server` imports."""
    found: set[str] = set()
    for path in (ROOT / "fhir_server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_runtime_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalized(re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0])
            for requirement in project["dependencies"]}


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    distributions = packages_distributions()
    third_party = {module for module in imported_top_level_modules()
                   if module not in sys.stdlib_module_names and module != "fhir_server"}
    declared = declared_runtime_distributions()
    # A module may be provided by a dependency's dependency (starlette by fastapi): it counts
    # when some distribution providing it is declared, or is required by a declared one.
    missing = sorted(module for module in third_party
                     if not {normalized(d) for d in distributions.get(module, [])} & (
                         declared | _required_by(declared)))
    assert not missing, f"imported but not runtime dependencies: {missing}"


def _required_by(declared: set[str]) -> set[str]:
    """Distributions the declared ones pull in (one level is enough for starlette, jwt...)."""
    pulled: set[str] = set()
    for name in declared:
        try:
            for requirement in requires(name) or []:
                if "extra ==" not in requirement:
                    pulled.add(normalized(re.split(r"[\[<>=!~ ;(]", requirement, maxsplit=1)[0]))
        except PackageNotFoundError:
            continue
    return pulled
