"""Every public function, class and method has a numpydoc docstring that fits it.

Public names: a module's ``__all__`` when it defines one, else the
non-underscore functions and classes defined in it, across ``laion_fmri`` and
its submodules (modules whose name starts with ``_`` and the ``cli`` package,
whose sub-commands are documented by ``--help``, are skipped). Public methods
and properties of public classes are checked too.

Rules, decided from the code so they cannot be gamed by a stray heading:

* a docstring exists;
* every parameter in the signature is documented (``Parameters``; for classes
  also ``Attributes``/``Other Parameters``) and no documented parameter is
  unknown;
* ``Returns`` when the code returns a value, ``Yields`` for generators;
* ``Raises`` when the body raises an exception itself;
* ``Examples`` on functions and classes (not on methods and properties);
* exception classes need only a docstring (plus their own ``__init__``
  parameters): their "what to do" lives in ``docs/troubleshooting.md``.

Sections are parsed with :mod:`numpydoc.docscrape`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path

import pytest

PACKAGE = "laion_fmri"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE
SKIP_PACKAGES = (f"{PACKAGE}.cli",)


def public_modules() -> list[str]:
    """Dotted names of the package's public modules, found on disk (no import)."""
    names = []
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(p.startswith("_") for p in parts):
            continue
        name = ".".join(parts)
        if any(name == s or name.startswith(s + ".") for s in SKIP_PACKAGES):
            continue
        names.append(name)
    return names


def public_objects(module) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    """``(public name, object)`` for the functions and classes a module exposes."""
    if hasattr(module, "__all__"):
        names = list(module.__all__)
        objs = [(n, getattr(module, n)) for n in names]
    else:
        objs = [
            (n, o)
            for n, o in vars(module).items()
            if not n.startswith("_") and getattr(o, "__module__", None) == module.__name__
        ]
    return [(f"{module.__name__}.{n}", o) for n, o in objs if inspect.isfunction(o) or inspect.isclass(o)]


def public_members(cls: type) -> list[tuple[str, object]]:
    """Public methods and properties defined on the class itself."""
    out = []
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isfunction(attr) or isinstance(attr, property):
            out.append((name, attr))
    return out


# --------------------------------------------------------------------------- the checks
def _documented_names(doc, sections: tuple[str, ...]) -> set[str]:  # type: ignore[no-untyped-def]
    names: set[str] = set()
    for section in sections:
        for param in doc[section]:
            for name in param.name.split(","):
                names.add(name.strip().lstrip("*"))
    return names


def _signature_names(obj: object, is_class: bool) -> list[str] | None:
    target = obj.__init__ if is_class else obj  # type: ignore[misc]
    if is_class and (target is object.__init__ or getattr(obj, "_is_protocol", False)):
        return []  # nothing to construct (a Protocol's __init__ is a typing placeholder)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    names = [p.name for p in sig.parameters.values()]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _own_function_nodes(func: object) -> list[ast.AST]:
    """AST nodes of the function body, not descending into nested defs or classes."""
    try:
        source = textwrap.dedent(inspect.getsource(func))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return []
    tree = ast.parse(source)
    top = tree.body[0]
    nodes: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(top))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def raises_itself(func: object) -> bool:
    """Whether the body raises a named exception (``raise X(...)``), not only re-raises."""
    return any(isinstance(n, ast.Raise) and n.exc is not None for n in _own_function_nodes(func))


def _own_init(cls: type) -> bool:
    """Whether a class of ours (not a built-in base) defines ``__init__``."""
    return any("__init__" in vars(c) for c in cls.__mro__ if c.__module__.startswith(PACKAGE))


def problems(name: str, obj: object, kind: str) -> list[str]:
    """Docstring problems of one object; ``kind`` is function, class, method or property."""
    if kind == "property":
        return [] if inspect.getdoc(obj) else [f"{name}: no docstring"]
    if not (obj.__doc__ or "").strip():  # type: ignore[attr-defined]
        return [f"{name}: no docstring"]
    from numpydoc.docscrape import get_doc_object
    from numpydoc.validate import Validator

    is_class = kind == "class"
    is_exception = is_class and issubclass(obj, BaseException)  # type: ignore[arg-type]
    doc = get_doc_object(obj)
    out: list[str] = []

    sig = _signature_names(obj, is_class)
    if sig is not None and not (is_exception and not _own_init(obj)):
        sections = ("Parameters", "Other Parameters") + (("Attributes",) if is_class else ())
        documented = _documented_names(doc, sections)
        missing = [p for p in sig if p not in documented]
        if missing:
            out.append(f"{name}: parameters not documented: {', '.join(missing)}")
        if not is_class:
            unknown = sorted(_documented_names(doc, ("Parameters",)) - set(sig))
            if unknown:
                out.append(f"{name}: documented parameters not in the signature: {', '.join(unknown)}")
    if is_exception:
        return out

    if not is_class:
        validator = Validator(doc)
        if validator.is_generator_function:
            if not doc["Yields"]:
                out.append(f"{name}: generator without a Yields section")
        elif not doc["Returns"] and validator.method_returns_something:
            out.append(f"{name}: returns a value but has no Returns section")
        if not doc["Raises"] and raises_itself(obj):
            out.append(f"{name}: raises but has no Raises section")
    if kind in ("function", "class") and not doc["Examples"]:
        out.append(f"{name}: no Examples section")
    return out


MODULES = public_modules()


def needs_numpydoc() -> None:
    """Skip (with the reason) when the docs extra is not installed."""
    pytest.importorskip("numpydoc", reason="numpydoc (docs extra) not installed: pip install -e '.[docs]'")


def module_problems(module_name: str) -> list[str]:
    """All docstring problems of one module's public API."""
    module = importlib.import_module(module_name)
    out: list[str] = []
    for name, obj in public_objects(module):
        home = getattr(obj, "__module__", module_name)
        if home != module_name and home in MODULES:
            continue  # a re-export: checked in the module that defines it
        if inspect.isclass(obj):
            out += problems(name, obj, "class")
            if not issubclass(obj, BaseException):
                for member, attr in public_members(obj):
                    kind = "property" if isinstance(attr, property) else "method"
                    out += problems(f"{name}.{member}", attr, kind)
        else:
            out += problems(name, obj, "function")
    return out


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("module_name", MODULES)
def test_public_api_is_documented(module_name: str) -> None:
    needs_numpydoc()
    found = module_problems(module_name)
    assert not found, f"{len(found)} docstring problem(s) in {module_name}:\n  " + "\n  ".join(found)


def test_module_discovery_finds_the_core_modules() -> None:
    for name in ("laion_fmri.config", "laion_fmri.layout", "laion_fmri.errors", "laion_fmri.splits"):
        assert name in MODULES
    assert not [m for m in MODULES if m.startswith("laion_fmri.cli")]


# The checker itself must catch each kind of problem (so it cannot pass vacuously).
def _good(path: str, n: int = 1) -> int:
    """Count something.

    Parameters
    ----------
    path : str
        A path.
    n : int
        How many.

    Returns
    -------
    int
        The count.

    Raises
    ------
    ValueError
        If ``n`` is negative.

    Examples
    --------
    >>> _good("x")
    1
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    return n


def _bad(path: str, n: int = 1) -> int:
    """Count something.

    Parameters
    ----------
    path : str
        A path.
    m : int
        Not a parameter.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    return n


def _generator(n: int):  # type: ignore[no-untyped-def]
    """Yield numbers.

    Parameters
    ----------
    n : int
        How many.

    Examples
    --------
    >>> list(_generator(2))
    [0, 1]
    """
    yield from range(n)


def _nested_raise_only() -> None:
    """Define a helper that raises.

    Examples
    --------
    >>> _nested_raise_only()
    """

    def helper() -> None:
        raise ValueError("inside the helper, not this function")

    del helper


def test_checker_accepts_a_complete_docstring() -> None:
    needs_numpydoc()
    assert problems("good", _good, "function") == []
    assert problems("nested", _nested_raise_only, "function") == []


def test_checker_reports_each_missing_section() -> None:
    needs_numpydoc()
    found = problems("bad", _bad, "function")
    assert "bad: parameters not documented: n" in found
    assert "bad: documented parameters not in the signature: m" in found
    assert "bad: returns a value but has no Returns section" in found
    assert "bad: raises but has no Raises section" in found
    assert "bad: no Examples section" in found
    assert problems("gen", _generator, "function") == ["gen: generator without a Yields section"]
    assert problems("none", lambda: None, "function") == ["none: no docstring"]
