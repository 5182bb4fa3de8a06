"""The package's structure: no import cycle, a small Subject, adapters that depend one way.

Imports are read from the source (every ``import`` statement, at module level,
inside functions and under ``TYPE_CHECKING`` alike), so a cycle hidden in a
method or a type annotation still counts.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from laion_fmri._compat import MOVED

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "laion_fmri"
# Import cycles allowed (none): any cycle fails.
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _owner(name: str) -> str | None:
    """The package module an imported dotted name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Package modules ``module`` imports anywhere in its source."""
    path = MODULES[module]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(filter(None, (_owner(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            for alias in node.names:
                full = f"{base}.{alias.name}"
                owner = full if full in MODULES else _owner(base)
                if owner:
                    out.add(owner)
    # Importing a sub-module runs its parents' __init__, not the other way round.
    return {o for o in out if o != module and not module.startswith(o + ".")}


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_cycle_finder_finds_a_cycle() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_sees_method_and_type_only_imports() -> None:
    # Subject's thin wrappers (its _adapters method group) import the adapters
    # inside methods / for types only.
    assert {"laion_fmri.torch", "laion_fmri.xr", "laion_fmri.alignment"} <= GRAPH[
        "laion_fmri.subject._adapters"
    ]


def test_no_import_cycle() -> None:
    cycles = [sorted(c) for c in import_cycles(GRAPH) if frozenset(c) not in KNOWN_CYCLES]
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize(
    "adapter", ["laion_fmri.torch", "laion_fmri.torch_data", "laion_fmri.xr", "laion_fmri.splits._subject"]
)
def test_adapters_do_not_import_the_subject_front_door(adapter: str) -> None:
    assert not {m for m in GRAPH[adapter] if m in ("laion_fmri.subject", "laion_fmri.subject._subject")}


def test_torch_reads_betas_only_through_the_reader() -> None:
    assert not GRAPH["laion_fmri.torch"] & {"laion_fmri._cache", "laion_fmri.layout", "laion_fmri._nifti"}


def test_betas_reader_does_not_know_subjects() -> None:
    assert not {m for m in GRAPH["laion_fmri.betas"] if m.startswith("laion_fmri.subject")}


def test_subject_front_door_is_small() -> None:
    from laion_fmri.subject import Subject

    lines, _ = inspect.getsourcelines(Subject)
    assert len(lines) < 400, f"Subject is {len(lines)} lines"




def test_no_module_over_600_lines() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    large = {m: n for m, n in sizes.items() if n > 600}
    assert not large, f"modules over 600 lines: {large}"


def test_every_module_declares_its_public_names() -> None:
    missing = [
        m for m, p in MODULES.items()
        if not m.startswith("laion_fmri.sample")  # the sample generator's own convention
        and "__all__" not in {
            t.id for node in ast.parse(p.read_text(encoding="utf-8")).body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
    ]
    assert not missing, f"modules without __all__: {missing}"


def test_type_checkers_see_every_lazy_top_level_name() -> None:
    import laion_fmri

    tree = ast.parse(MODULES["laion_fmri"].read_text(encoding="utf-8"))
    blocks = [n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    seen = {a.asname or a.name for b in blocks for n in ast.walk(b) if isinstance(n, ast.ImportFrom)
            for a in n.names}
    assert set(laion_fmri._LAZY) <= seen, sorted(set(laion_fmri._LAZY) - seen)
    assert set(laion_fmri.__all__) == {"__version__", *laion_fmri._LAZY}
    for name in laion_fmri._LAZY:
        assert getattr(laion_fmri, name) is not None


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_moved_modules_still_import_with_a_warning(old: str, new: str) -> None:
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # the real module keeps its own identity
    assert old not in {m for m in MODULES}  # no file at the old path
