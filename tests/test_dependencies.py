"""Every third-party module the code imports comes from a distribution that pyproject.toml declares.

A new machine has only what the project declares: an import that works here because something else
pulled its package in (jsonargparse through Lightning's extras, once) breaks a user's install. The
imports are read from the source (every ``import`` statement, lazy ones inside functions included),
mapped to the installed distributions that provide them, and checked against the declared groups:

- ``selfsup_color`` and ``transfer``: the core dependencies, plus the optional speed-ups of
  ``OPTIONAL`` from their extras;
- ``experiments``: the core plus the ``experiments`` extra;
- ``tests``: the core plus ``dev`` (which includes ``experiments``).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OWN = {"selfsup_color", "transfer", "experiments", "tests"}
OPTIONAL = {"torchcodec": "torchcodec"}
"""Modules imported only where their absence is handled: module -> the extra that provides it."""


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, f"unreadable requirement {requirement!r} in pyproject.toml"
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def declared() -> dict[str, set[str]]:
    """Group -> declared distribution names: ``core`` and each extra, self-references expanded."""
    if sys.version_info >= (3, 11):
        import tomllib

        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        groups = {"core": project["dependencies"], **project.get("optional-dependencies", {})}
    else:  # Python 3.10: the installed metadata of the same file
        groups = {"core": []}
        for line in metadata.requires("selfsup-color") or []:
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", line)
            groups.setdefault(extra.group(1) if extra else "core", []).append(line.split(";")[0])
    names = {group: {_name(r) for r in reqs} for group, reqs in groups.items()}
    for group, members in names.items():
        for extra in re.findall(r"selfsup-color\[([^\]]+)\]", " ".join(groups[group])):
            members |= {n for e in extra.split(",") for n in names[e.strip()]}
        members.discard("selfsup-color")
    return names


def imports(root: str) -> Iterator[tuple[str, str]]:
    """(top-level module, file:line) of every absolute import under ``root``."""
    for path in sorted((REPO / root).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN and top != "__future__":
                    yield top, f"{path.relative_to(REPO)}:{node.lineno}"


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def providers(module: str) -> set[str]:
    """Normalised names of the installed distributions providing ``module`` (its own name if none)."""
    found = _distributions().get(module) or [module]
    return {_name(d) for d in found}


GROUPS = {
    "selfsup_color": ("core",),
    "transfer": ("core",),
    "experiments": ("core", "experiments"),
    "tests": ("core", "dev"),
}


@pytest.mark.parametrize("root", sorted(GROUPS))
def test_every_import_is_declared(root: str) -> None:
    names = declared()
    allowed = set().union(*(names[g] for g in GROUPS[root]))
    missing = []
    for module, where in imports(root):
        if module in OPTIONAL:
            assert _name(OPTIONAL[module]) in names.get(OPTIONAL[module], set()), (
                f"{where}: optional module {module!r} needs the extra {OPTIONAL[module]!r} in pyproject.toml"
            )
            continue
        if not providers(module) & allowed:
            missing.append(f"{where}: {module} (provided by {sorted(providers(module))})")
    assert not missing, f"imported but not declared for {root} ({', '.join(GROUPS[root])}):\n" + "\n".join(
        missing
    )


def test_every_core_dependency_is_used() -> None:
    """A declared core dependency is imported by the packages (pycocotools, which torchmetrics' mAP
    needs, comes through the torchmetrics[detection] extra, not as a direct dependency)."""
    used = {d for root in ("selfsup_color", "transfer") for m, _ in imports(root) for d in providers(m)}
    unused = declared()["core"] - used
    assert not unused, f"declared in pyproject.toml but never imported by the packages: {sorted(unused)}"


def test_the_walk_sees_lazy_imports_and_maps_module_names() -> None:
    """The checks above would catch an undeclared import: the walk finds imports inside functions,
    and module names map to distribution names that differ from them."""
    found = dict(imports("experiments"))
    assert "sklearn" in found  # imported inside a function of experiments/benchmarks/targets.py
    assert providers("sklearn") == {"scikit-learn"} and providers("PIL") == {"pillow"}
    assert "jsonargparse" in dict(imports("transfer")) and "jsonargparse" in declared()["core"]
