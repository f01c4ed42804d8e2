"""The source layout the design asks for: subpackages, package data, and an import graph without cycles."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    """Every module of the installed tree: ``spoco_zoo.x.y`` -> its file (model_cards mapped in)."""
    found = {}
    for path in sorted((ROOT / "spoco_zoo").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    found["spoco_zoo.model_cards"] = ROOT / "model_cards" / "__init__.py"
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """spoco_zoo modules ``path`` imports at module level or inside functions (absolute imports only)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def test_listed_packages_match_the_source_tree() -> None:
    """pyproject lists the packages by hand (model_cards is mapped in): a new subpackage must be listed."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert set(config["packages"]) == on_disk
    assert config["package-dir"] == {"spoco_zoo.model_cards": "model_cards"}
    assert not (ROOT / "exporters").exists(), "no top-level 'exporters' package (a PyPI distribution owns the name)"


def test_import_graph_has_no_cycle() -> None:
    """No module of spoco_zoo imports, directly or through others, itself -- and the package readers
    (spoco_zoo.zoo) never import the package writers (spoco_zoo.exporters)."""
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of the design; drop parent edges
    graph = {n: {t for t in targets if not n.startswith(t + ".")} for n, targets in graph.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(trail[trail.index(nxt) :] + [node, nxt] if nxt in trail else [node, nxt])
                return True
            if nxt not in state and visit(nxt, trail + [node]):
                return True
        state[node] = 2
        return False

    for name in sorted(graph):
        if name not in state and visit(name, []):
            break
    assert not cycle, " -> ".join(cycle)
    readers = {n for n in graph if n.startswith("spoco_zoo.zoo")}
    assert not {t for n in readers for t in graph[n] if t.startswith("spoco_zoo.exporters")}


def test_wheel_ships_the_model_cards(tmp_path: Path) -> None:
    """A wheel holds the templates under spoco_zoo/model_cards/ and imports them from there (the editable
    install these tests run from finds them too: tests/test_export.py)."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"  # a copy: the build writes build/ next to pyproject.toml
    for name in ("spoco_zoo", "model_cards"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run([*pip, "-w", str(tmp_path)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("spoco_zoo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "spoco_zoo/model_cards/spoco_model.md" in names
    assert any(n.startswith("spoco_zoo/exporters/") for n in names)
    assert any(n.startswith("spoco_zoo/zoo/") for n in names)
    assert not [n for n in names if n.split("/")[0] in ("model_cards", "exporters", "export")]
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "from importlib import resources; import spoco_zoo.model_cards as m; "
        f"assert m.__file__.startswith({str(target)!r}), m.__file__; "
        "print(resources.files('spoco_zoo.model_cards').joinpath('spoco_model.md').read_text()[:40])"
    )
    # -S: without site-packages, so the editable install cannot answer instead of the wheel's files
    env = {"PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("# ${name}")
