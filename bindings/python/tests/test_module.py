"""The module as a whole: its exceptions, its docstring examples, and stubs that match it."""

from __future__ import annotations

import ast
import doctest
import inspect
import re
from pathlib import Path
from typing import Set, Tuple

import pytest

import aether
from conftest import REPO

STUBS = Path(__file__).resolve().parents[1] / "aether.pyi"


def test_every_exception_is_an_aether_error() -> None:
    for name in ["ConfigError", "PackError", "ApiError", "NetworkError", "IntegrityError"]:
        cls = getattr(aether, name)
        assert issubclass(cls, aether.AetherError) and cls.__module__ == "aether", name
        assert cls.__doc__, name
    assert issubclass(aether.AetherError, Exception)


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = []
    for name, value in vars(aether).items():
        if not name.startswith("_") and (inspect.isroutine(value) or inspect.isclass(value)):
            tests.extend(finder.find(value, name, globs={"aether": aether}))
    assert len([t for t in tests if t.examples]) >= 5, "the examples were found"
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def public_names() -> Set[str]:
    return {n for n, v in vars(aether).items() if not n.startswith("_") and not inspect.ismodule(v)}


def stub_names() -> Set[str]:
    tree = ast.parse(STUBS.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {name for name in names if not name.startswith("_")}


def test_the_stubs_describe_every_public_name() -> None:
    assert public_names() == stub_names()


def test_stub_signatures_match_the_runtime() -> None:
    tree = ast.parse(STUBS.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    for name, node in functions.items():
        runtime = inspect.signature(getattr(aether, name))
        stub = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        assert list(runtime.parameters) == stub, name


def locked_versions(lockfile: Path) -> Set[Tuple[str, str]]:
    text = lockfile.read_text()
    return set(re.findall(r'^name = "([^"]+)"\nversion = "([^"]+)"', text, flags=re.MULTILINE))


def test_the_extension_locks_the_workspace_dependency_versions() -> None:
    """Packing must give the CLI's bytes, so core and sdk build with the very same crates."""
    workspace = locked_versions(REPO / "Cargo.lock")
    bindings = locked_versions(REPO / "bindings" / "python" / "Cargo.lock")
    shared = {name for name, _ in bindings} & {name for name, _ in workspace}
    assert {p for p in bindings if p[0] in shared} <= workspace, "refresh bindings/python/Cargo.lock (README)"
