"""The dependency rule between the package's rooms (DESIGN.md, "The rule"), read from the source.

Every module's imports are read with `ast`, those at the top of the module and
those inside functions alike, and a broken rule fails naming the file, the line
and the import:

- agent.music imports nothing of ours but agent.errors and agent.config;
- agent.model imports no agent.live, agent.session, agent.ui or agent.training,
  and nothing torch at import (its torch modules are loaded lazily);
- agent.live imports no agent.session or agent.ui (they attach through hooks);
- only agent/training, agent/model/net.py and the torch runtime import torch (and agent/bench, whose
  latency benchmark measures torch itself: the window re-run and the torch backend, side by side).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "agent"
TORCH_MODULES = ("agent.model.net", "agent.model.runtime.torch_backend")  # import torch at their top


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository root
    line: int
    text: str  # the statement as written
    target: str  # a dotted name it imports: "agent.music.tokens.Note", "torch.nn"
    top_level: bool  # runs when the module is imported (not inside a function)

    def __str__(self) -> str:
        where = "at import" if self.top_level else "in a function"
        return f"{self.path}:{self.line}: `{self.text}` ({where})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_imports(path: Path, source: str | None = None) -> list[Import]:
    """Every import statement of a module, each target on its own; relative imports resolved."""
    source = path.read_text() if source is None else source
    tree = ast.parse(source, filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    rel = str(path.relative_to(ROOT))
    out: list[Import] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                text = " ".join(ast.get_source_segment(source, child).split())
                for target in targets(child, package):
                    out.append(Import(rel, child.lineno, text, target, top))
            visit(child, inner)

    visit(tree, True)
    return out


def targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # from . import x, from ..y import z
        up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(up + ([base] if base else []))
    return [base if a.name == "*" else f"{base}.{a.name}" for a in node.names]


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def package_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in read_imports(path)]


def in_room(imp: Import, room: str) -> bool:
    return within(module_name(ROOT / imp.path), room)


# -- the rules: each returns why an import breaks it, or None ---------------------------
def music_rule(imp: Import) -> str | None:
    if in_room(imp, "agent.music") and within(imp.target, "agent") \
            and not within(imp.target, "agent.music", "agent.errors", "agent.config"):
        return "agent.music imports nothing of ours but agent.errors and agent.config"
    return None


def model_rule(imp: Import) -> str | None:
    if not in_room(imp, "agent.model"):
        return None
    if within(imp.target, "agent.live", "agent.session", "agent.ui", "agent.training"):
        return "agent.model imports no agent.live, agent.session, agent.ui or agent.training"
    if imp.top_level and module_name(ROOT / imp.path) not in TORCH_MODULES \
            and within(imp.target, "torch", *TORCH_MODULES):
        return "agent.model imports nothing torch at import (load net.py and the torch runtime lazily)"
    return None


def live_rule(imp: Import) -> str | None:
    if in_room(imp, "agent.live") and within(imp.target, "agent.session", "agent.ui"):
        return "agent.live imports no agent.session or agent.ui (they attach through hooks and controls)"
    return None


def torch_rule(imp: Import) -> str | None:
    mod = module_name(ROOT / imp.path)
    if within(imp.target, "torch") and not (within(mod, "agent.training", "agent.bench") or mod in TORCH_MODULES):
        return "only agent/training, agent/bench, agent/model/net.py and the torch runtime import torch"
    return None


RULES = [music_rule, model_rule, live_rule, torch_rule]


def broken(imports: list[Import], rule) -> list[str]:
    return [f"{imp}: {why}" for imp in imports if (why := rule(imp)) is not None]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_the_rooms_keep_the_dependency_rule(rule):
    bad = broken(package_imports(), rule)
    assert not bad, "\n".join(bad)


def test_importing_the_model_room_leaves_torch_unloaded():
    code = ("import sys, agent.model, agent.model.predictor, agent.model.runtime\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing agent.model loaded torch: {out.stdout.strip()[:200]}"


# -- the reader itself ------------------------------------------------------------------
def test_the_reader_sees_function_level_and_relative_imports():
    source = ("import torch.nn as nn\n"
              "from . import keys\n"
              "def f():\n"
              "    from agent.live import engine\n"
              "class C:\n"
              "    from ..session.recorder import Recorder\n")
    got = read_imports(PACKAGE / "music" / "fake.py", source)
    assert [(i.line, i.target, i.top_level) for i in got] == [
        (1, "torch.nn", True), (2, "agent.music.keys", True), (4, "agent.live.engine", False),
        (6, "agent.session.recorder.Recorder", True)]
    assert [r.__name__ for i in got for r in RULES if r(i)] == ["torch_rule", "music_rule", "music_rule"]


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60  # past these a module is usually two roles, a function two jobs


def test_no_module_over_400_lines_and_no_function_over_60_in_the_package():
    too_long = []
    for path in sorted((ROOT / "agent").rglob("*.py")):
        source = path.read_text()
        rel = path.relative_to(ROOT)
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = node.end_lineno - node.lineno + 1
                if span > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno}: {node.name}() {span} lines")
    assert not too_long, "\n".join(too_long)
