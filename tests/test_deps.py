"""dvc.yaml's code deps are each stage's import closure: a library edit re-runs every stage whose
numbers it can change, and no other.

The closure of ``python -m pipeline.stages.<name>`` is every file of digit/ and pipeline/ that its
module imports, transitively (function-level imports included), found by reading the source. Left
out by name: the infrastructure that moves bytes but cannot change a result, and package
``__init__`` files that hold nothing but a docstring.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("digit", "pipeline")
# Atomic writes, the CLI / logging wrapper, the params schema (validated on its own), the launcher,
# the progress bar / log lines.
INFRASTRUCTURE = {
    "digit/progress.py",
    "pipeline/io.py",
    "pipeline/stage.py",
    "pipeline/params.py",
    "pipeline/warm.py",
    "pipeline/stages/__init__.py",
}
STAGE_CMD = re.compile(r"python -m (pipeline\.stages\.\w+)")


def _module_file(root: Path, dotted: str) -> Path | None:
    path = root.joinpath(*dotted.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imported_names(root: Path, path: Path) -> set[str]:
    """Dotted names this file imports (``from a.b import c`` gives a.b and a.b.c: c may be a
    module), relative imports resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def import_closure(root: Path, module: str, exclude: set[str] = INFRASTRUCTURE) -> set[str]:
    """Repo-relative paths of the project files ``module`` imports, transitively, minus
    ``exclude`` and docstring-only ``__init__`` files. An excluded file is opaque: the params
    schema imports registry names to validate against, which are not the stage's computation (a
    stage that computes with them imports them itself)."""
    start = _module_file(root, module)
    assert start is not None, f"{module}: no such module under {root}"
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.relative_to(root).as_posix() in exclude:
            continue
        for name in _imported_names(root, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                found = _module_file(root, ".".join(parts[:i]))
                if found is not None:
                    todo.append(found)
    rel = {p.relative_to(root).as_posix(): p for p in seen}
    return {
        r
        for r, p in rel.items()
        if r not in exclude and not (p.name == "__init__.py" and _docstring_only(p))
    }


def dag_stages() -> list[tuple[str, str, set[str]]]:
    """(stage name, its module, its code deps) of every stage of dvc.yaml, as DVC resolves it."""
    from dvc.repo import Repo

    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with Repo(str(ROOT)) as repo:
        stages = []
        for st in repo.index.stages:
            match = STAGE_CMD.search(st.cmd)
            assert match, f"{st.addressing}: command does not run a pipeline stage: {st.cmd}"
            code = {
                d.def_path
                for d in st.deps
                if d.def_path.endswith(".py") and d.def_path.split("/")[0] in PACKAGES
            }
            stages.append((st.addressing, match.group(1), code))
    return stages


STAGES = dag_stages()


@pytest.mark.parametrize(("name", "module", "code"), STAGES, ids=[s[0] for s in STAGES])
def test_code_deps_are_the_import_closure(name, module, code):
    closure = import_closure(ROOT, module)
    missing, stale = sorted(closure - code), sorted(code - closure)
    assert not missing, f"dvc.yaml stage {name}: add to deps (imported by {module}): {missing}"
    assert not stale, f"dvc.yaml stage {name}: remove from deps (not imported): {stale}"


def test_every_stage_module_is_in_the_dag():
    used = {module for _, module, _ in STAGES}
    modules = {
        f"pipeline.stages.{p.stem}"
        for p in (ROOT / "pipeline/stages").glob("*.py")
        if not p.name.startswith("_")
    }
    assert modules - used == set()


def test_closure_follows_what_a_stage_imports(tmp_path):
    """The finder itself: transitive, relative, function-level and ``from pkg import module``
    imports count; the excluded files, what only they import, and docstring-only ``__init__``
    files do not."""
    files = {
        "digit/__init__.py": '"""The library."""\n',
        "digit/a.py": "from digit import b\n",
        "digit/b.py": "def f():\n    from .c import g\n    return g\n",
        "digit/c.py": "g = 1\n",
        "digit/unused.py": "x = 1\n",
        "digit/names.py": "NAMES = ()\n",
        "digit/sub/__init__.py": "from digit.sub.inner import y\n",
        "digit/sub/inner.py": "y = 2\n",
        "pipeline/__init__.py": "",
        "pipeline/io.py": "import digit.names\n",
        "pipeline/stages/__init__.py": "",
        "pipeline/stages/s.py": "import digit.a\nfrom pipeline import io\nimport digit.sub\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    got = import_closure(tmp_path, "pipeline.stages.s", exclude={"pipeline/io.py"})
    assert got == {  # empty __init__ files hold no code either
        "pipeline/stages/s.py",
        "digit/a.py",
        "digit/b.py",
        "digit/c.py",
        "digit/sub/__init__.py",
        "digit/sub/inner.py",
    }
