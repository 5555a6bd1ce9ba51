"""The package's import graph, read from the source with ast: no cycle among module-level imports, and the layers
the design fixes (report/ reads files: it imports neither experiments/ nor scoring/ nor the metrics)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "overtonlite"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The overtonlite modules an import statement loads (a package's submodule when it names one)."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join([*pkg, base] if base else pkg)
        names = [base] + [f"{base}.{a.name}" for a in node.names]
    for name in names:
        if name in MODULES:
            out.append(name)
    return out


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level imports, all imports including those inside functions) of overtonlite modules."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top: set[str] = set()
    every: set[str] = set()

    def visit(nodes: list[ast.stmt], level: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found = _targets(node, module)
                every.update(found)
                if level:
                    top.update(found)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node.body, False)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.body, False)
                visit(node.orelse, level)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    child = getattr(node, field, None)
                    if isinstance(child, list):
                        visit([c for c in child if isinstance(c, ast.stmt | ast.ExceptHandler)], level)  # type: ignore[misc]
                if isinstance(node, ast.ExceptHandler):
                    visit(node.body, level)
                if isinstance(node, ast.Match):
                    for case in node.cases:
                        visit(case.body, level)

    visit(tree.body, True)
    # importing a.b.c runs a and a.b first, unless they are this module's own packages (already being run)
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    for name in list(top):
        parts = name.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))}
        top.update(p for p in parents - own if p in MODULES)
    top.discard(module)
    every.discard(module)
    return top, every


GRAPH = {m: _imports(m) for m in MODULES}


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_the_walker_sees_the_package() -> None:
    assert len(MODULES) > 50
    top, every = GRAPH["overtonlite.scoring"]
    assert "overtonlite.schema" in top and "overtonlite.scoring.agg" in top
    assert "overtonlite.backends" in every - top  # a function-level import (open_embedder)
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_cycle_among_module_level_imports() -> None:
    cycle = _find_cycle({m: top for m, (top, _) in GRAPH.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    "forbidden", ["overtonlite.experiments", "overtonlite.scoring", "overtonlite.metrics"]
)
def test_report_imports_neither_experiments_nor_scoring(forbidden: str) -> None:
    for module, (_, every) in GRAPH.items():
        if module == "overtonlite.report" or module.startswith("overtonlite.report."):
            bad = sorted(m for m in every if m == forbidden or m.startswith(forbidden + "."))
            assert not bad, f"{module} imports {bad}"


def test_report_runs_no_bootstrap() -> None:
    for path in sorted((ROOT / "report").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "bootstrap_ci" not in text and "default_rng" not in text, path.name
