"""The package's layout is its architecture: imports only point down the data flow
specs -> sizing -> perf -> plan -> deploy / bench -> present -> cli, and no module grows
past about 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "inferplan"

#: Layer of each top-level module or subpackage; a module may import its own layer and below.
LAYERS = {
    "errors": 0,
    "units": 0,
    "limits": 0,
    "specs": 1,
    "sizing": 2,
    "perf": 3,
    "plan": 4,
    "deploy": 5,
    "bench": 5,
    "present": 6,
    "cli": 7,
}
MAX_MODULE_LINES = 420


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _layer_of(module: str) -> int | None:
    """'inferplan.perf.simulator' -> 3; the package itself has no layer."""
    parts = module.split(".")
    if parts[0] != "inferplan" or len(parts) < 2:
        return None
    return LAYERS[parts[1]]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("inferplan.")]


def test_every_top_level_name_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    names -= {"__init__", "__pycache__", "data"}
    assert names == set(LAYERS), f"give these a layer in LAYERS: {sorted(names ^ set(LAYERS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = _layer_of(_module_name(path))
    if own is None:
        return  # inferplan/__init__.py re-exports the public API
    upward = [
        f"line {line}: {name} (layer {_layer_of(name)})"
        for line, name in _imports(path)
        if (layer := _layer_of(name)) is not None and layer > own
    ]
    assert not upward, f"{_module_name(path)} (layer {own}) imports from above: {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines; split it by noun"


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from inferplan.cli.common import out\nimport inferplan.present.web\n")
    assert [name for _, name in _imports(bad)] == ["inferplan.cli.common", "inferplan.present.web"]
    assert _layer_of("inferplan.cli.common") == 7 > _layer_of("inferplan.sizing.memory") == 2  # type: ignore[operator]


def test_readme_names_every_module() -> None:
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Where things live") : readme.index("## Memory model")]
    missing = [
        str(p.relative_to(PACKAGE))
        for p in _modules()
        if p.name != "__init__.py" and str(p.relative_to(PACKAGE)) not in section and p.name not in section
    ]
    assert not missing, f"README's 'Where things live' omits: {missing}"
