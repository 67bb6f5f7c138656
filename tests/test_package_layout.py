"""The package tree is the DAG: one subpackage per stage, imports only towards earlier stages, no circles,
and nothing torch-bound reachable from the serving side (read from the source with ast, nothing imported).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "archive_encoders"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE
# The only direction an import may take: a module imports its own stage or an earlier one. The base
# layer (the package's top-level modules) imports no stage; the command line sits above everything.
STAGES = (
    "base",
    "archive",
    "corpus",
    "datasets",
    "train",
    "encoders",
    "export",
    "evaluate",
    "judging",
    "report",
    "index",
)
TOP = {"cli": len(STAGES)}
TORCH_BOUND = {"torch", "transformers", "sentence_transformers", "peft", "bitsandbytes", "accelerate"}
TORCH_FREE_STAGES = ("encoders", "judging", "index")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = all_modules()


def stage_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] in TOP:
        return TOP[parts[1]]
    return STAGES.index(parts[1]) if parts[1] in STAGES and (ROOT / parts[1]).is_dir() else 0


def resolve(target: str) -> str:
    """The archive_encoders module an import names (a name imported from a package that is a
    submodule counts as that submodule)."""
    while target not in MODULES and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def imports(path: Path, module_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, or only those run when it is imported."""
    tree = ast.parse(path.read_text())
    nodes = []
    if module_level_only:
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            nodes.append(node)
            stack.extend(ast.iter_child_nodes(node))
    else:
        nodes = [n for n in ast.walk(tree) if not _type_checking_only(tree, n)]
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}:{node.lineno}: relative import (write it absolute)"
            base = node.module or ""
            for alias in node.names:  # a submodule imported from its package is an import of it
                name = f"{base}.{alias.name}"
                found.append((name if name in MODULES else base, node.lineno))
    return found


def _type_checking_only(tree: ast.Module, target: ast.AST) -> bool:
    for node in tree.body:
        guarded = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        if guarded and any(target is n for n in ast.walk(node)):
            return True
    return False


def internal_edges(module_level_only: bool = False) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name, _ in imports(path, module_level_only):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = resolve(name)
                if target != module and not (target == PACKAGE and name != PACKAGE):
                    edges[module].add(target)
    return edges


def test_every_module_sits_in_a_known_stage():
    top_level = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert top_level == set(STAGES[1:]), "each subpackage is a stage of the Snakefile"


def test_no_import_goes_against_the_stage_order():
    backward = []
    for module, path in MODULES.items():
        for name, line in imports(path):
            if name.startswith(PACKAGE + "."):
                target = resolve(name)
                if stage_of(target) > stage_of(module):
                    backward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not backward, "imports against base < " + " < ".join(STAGES[1:]) + ":\n" + "\n".join(backward)


def test_no_circular_imports():
    """Strongly connected components of the module graph (every import, inside functions too: a lazy
    import hides a circle, it does not remove it)."""
    edges = internal_edges()
    index, low, on_stack, stack, circles = {}, {}, set(), [], []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
                circles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in MODULES:
        if module not in index:
            visit(module)
    # a package's __init__ re-exports its modules, which import it back through their package path
    circles = [c for c in circles if not _only_package_reexports(c, edges)]
    assert not circles, f"import circles: {circles}"


def _only_package_reexports(component: list[str], edges: dict[str, set[str]]) -> bool:
    packages = [m for m in component if MODULES[m].name == "__init__.py"]
    rest = [m for m in component if m not in packages]
    return bool(packages) and all(not (edges[m] & set(rest)) for m in rest)


def reachable_at_import(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a module runs its parents
        todo += edges[module]
    return seen


@pytest.mark.parametrize("stage", TORCH_FREE_STAGES)
def test_serving_stages_reach_no_torch_at_import(stage):
    edges = internal_edges(module_level_only=True)
    offenders = []
    for module in [m for m in MODULES if m.split(".")[1:2] == [stage]]:
        for reached in sorted(reachable_at_import(module, edges)):
            for name, line in imports(MODULES[reached], module_level_only=True):
                if name.split(".")[0] in TORCH_BOUND:
                    offenders.append(f"{module} -> {reached}:{line} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_checks_see_a_backward_import_and_a_circle(tmp_path, monkeypatch):
    """The walker itself: a base module importing a stage, and two modules importing each other."""
    fake = tmp_path / PACKAGE
    (fake / "index").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "index" / "__init__.py").write_text("")
    (fake / "paths.py").write_text("from archive_encoders.index.build import x\n")
    (fake / "index" / "build.py").write_text(
        "import torch\n\ndef f():\n    from archive_encoders import paths\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    monkeypatch.setattr(sys.modules[__name__], "MODULES", all_modules())
    assert stage_of("archive_encoders.index.build") > stage_of("archive_encoders.paths")
    with pytest.raises(AssertionError, match="paths.py:1 imports archive_encoders.index.build"):
        test_no_import_goes_against_the_stage_order()
    with pytest.raises(AssertionError, match="import circles"):
        test_no_circular_imports()
    with pytest.raises(AssertionError, match="imports torch"):
        test_serving_stages_reach_no_torch_at_import("index")


def test_importing_the_serving_side_loads_no_torch():
    code = (
        "import sys, archive_encoders.cli, archive_encoders.index, archive_encoders.encoders\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(TORCH_BOUND)!r})\n"
        "print(bad)\nsys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_test_modules_have_unique_names():
    """pytest imports test files by their base name (rootdir-relative folders have no __init__.py): two
    test_x.py in two folders collide at collection."""
    names = [p.name for p in Path(__file__).parent.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
