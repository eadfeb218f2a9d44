"""The package keeps the shape the README draws: subpackages by concern, each named in "How it
fits together", small modules, no import cycle between modules and nothing done at import
beyond defining things (read from the source, not by importing it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "driftline"
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def top_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements run at import: the module's own, and those under its ``if``/``try`` blocks,
    except ``if TYPE_CHECKING:`` (never run)."""
    out: list[ast.stmt] = []
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            pending[:0] = node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending[:0] = node.body + node.orelse + node.finalbody
            pending[:0] = [s for h in node.handlers for s in h.body]
        else:
            out.append(node)
    return out


def imported_at_import(name: str, path: Path) -> set[str]:
    """The package's modules ``name`` imports when it is imported."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in top_level(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_and_not_a_chain() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_between_the_packages_modules() -> None:
    """A package's ``__init__`` importing its own modules is not a cycle with them; any other
    loop is (modules that import each other at import time load in an order-dependent way)."""
    graph = {
        name: {dep for dep in imported_at_import(name, path) if not name.startswith(dep + ".")}
        for name, path in MODULES.items()
    }
    assert cycles(graph) == []


def test_no_module_is_over_300_lines() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_importing_a_module_reads_no_settings_or_environment() -> None:
    """Settings are built by whoever runs the code (a service's main, a CLI command), never by
    an import: a module-level ``Settings()``, ``os.environ`` or ``os.getenv`` would be."""
    offenders = []
    for name, path in MODULES.items():
        for node in top_level(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            text = ast.unparse(node)
            if re.search(r"\bSettings\(|os\.environ|os\.getenv", text):
                offenders.append(f"{name}: {text[:80]}")
    assert offenders == []


def test_the_readme_names_every_subpackage() -> None:
    section = (ROOT / "README.md").read_text().split("## How it fits together", 1)[1]
    section = section.split("\n## ", 1)[0]
    named = set(re.findall(r"^\| (.+?) \|", section, re.M))
    named_packages = {p.strip(" `") for row in named for p in row.split(",")}
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages - named_packages == set()
