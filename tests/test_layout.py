"""The layers: imports point only down, command -> compare, serving -> the engine packages -> the
shared torch blocks -> fmnist (the core), and each engine package imports its own frameworks only
(docs/architecture.md). The engine packages are read from the registry (`fmnist.engines`): an
engine added by its package and its entry point is held to the same rules without an edit here."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from fmnist import engines

REPO = Path(__file__).resolve().parents[1]
KERAS = {"keras", "tensorflow", "tf2onnx", "jax"}
TORCH = {"torch", "lightning", "pytorch_lightning", "torchmetrics", "torchvision", "onnxscript"}


def engine_packages() -> dict[str, set[str]]:
    """Each project package implementing an engine -> the frameworks its engines declare (and
    their exporters' modules, which are imported lazily inside the export capability)."""
    found: dict[str, set[str]] = {}
    for spec in engines.all_engines():
        for module in spec.capabilities.values():
            package = module.split(".")[0]
            if (REPO / package).is_dir():
                found.setdefault(package, set()).update(spec.frameworks, {"tf2onnx", "onnxscript"})
    return found


ENGINE_PACKAGES = engine_packages()
#: The torch building blocks the torch engines share (the network, Keras' Adam, the batch path,
#: the plain loop, ...): torch and the core only, no Lightning, no engine package.
SHARED = {"torch_blocks": {"torch", "onnxscript"}}
TOOLS = ("parity", "export", "convert", "compare", "benchmarks", "serving", "fmnist_cli")
PROJECT = (*TOOLS, "executors", *ENGINE_PACKAGES, *SHARED, "fmnist")
#: package -> the project packages and frameworks it may import (lazy imports inside functions too).
ALLOWED = {
    "fmnist": ({"fmnist"}, set()),
    # An engine package: the core, the shared blocks, itself, and the frameworks its engines declare
    # (keras_model imports torch as the backend of Keras on torch, `keras-torch`, only where Keras
    # runs on it). Never another engine's package: the torch engines share torch_blocks instead.
    **{
        package: ({"fmnist", *SHARED, package}, frameworks & (KERAS | TORCH))
        for package, frameworks in ENGINE_PACKAGES.items()
    },
    **{package: ({"fmnist", package}, frameworks) for package, frameworks in SHARED.items()},
    "serving": ({"fmnist", "serving"}, set()),
    # Runs jobs in fresh processes, here or on Ray nodes: never a framework itself.
    "executors": ({"fmnist", "executors"}, set()),
    # The tools reach an engine only through its capabilities (fmnist.engines), never an engine
    # module. One product each: parity's checks; the export, judged by parity's float32 rule; the
    # conversion, proven by the export's logit comparison and parity's lockstep; the multi-seed
    # compare and its report, which trains on the executors.
    "parity": ({"fmnist", "parity"}, KERAS | TORCH),
    "export": ({"fmnist", "parity", "export"}, KERAS | TORCH),
    "convert": ({"fmnist", "parity", "export", "convert"}, KERAS | TORCH),
    "compare": ({"fmnist", "compare", "executors"}, KERAS | TORCH),
    # The measuring extras: benchmark-inference times the export `fmnist export` makes and checks
    # (export.check); the GPU bundle runs a compare on the device.
    "benchmarks": ({"fmnist", "export", "compare", "benchmarks", "executors"}, KERAS | TORCH),
    # The command reaches frameworks only through the packages below, and engines only by name.
    "fmnist_cli": (set(PROJECT) - set(ENGINE_PACKAGES) - set(SHARED), set()),
    # The packaged YAML configs (installed as fmnist_configs, read by fmnist.packaged_configs): no code.
    "configs": (set(), set()),
}
ENGINES = set(ENGINE_PACKAGES) | set(SHARED)
MODULE_NAME = re.compile(rf"({'|'.join(sorted(ENGINES))})(\.\w+)*")


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every import in a file, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", list(ALLOWED))
def test_imports_point_only_down(package):
    projects, frameworks = ALLOWED[package]
    wrong = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = imported_packages(path)
        bad = (names & set(PROJECT)) - projects | (names & (KERAS | TORCH)) - frameworks
        if bad:
            wrong[str(path.relative_to(REPO))] = sorted(bad)
    assert not wrong, f"imports pointing up or sideways: {wrong}"


def test_the_torch_engines_share_blocks_and_never_import_each_other():
    """Lightning and plain PyTorch share torch_blocks; neither engine package may import the other,
    and the shared blocks import no Lightning (its torchmetrics neither)."""
    assert "torch_blocks" in ALLOWED["lightning_model"][0] and "torch_blocks" in ALLOWED["pytorch_model"][0]
    assert "pytorch_model" not in ALLOWED["lightning_model"][0]
    assert "lightning_model" not in ALLOWED["pytorch_model"][0]
    assert ALLOWED["torch_blocks"] == ({"fmnist", "torch_blocks"}, {"torch", "onnxscript"})


def test_the_rule_table_covers_every_package():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages - {"tests"} == set(ALLOWED)


def test_the_core_imports_with_everything_above_it_unimportable(run_with_blocked_imports):
    """Every core module imported in a process where the other packages and the frameworks cannot
    be: the static check above, confirmed by Python itself."""
    modules = sorted(f"fmnist.{p.stem}" for p in (REPO / "fmnist").glob("*.py") if p.stem != "__init__")
    blocked = tuple(set(PROJECT) - {"fmnist"} | KERAS | TORCH)
    done = run_with_blocked_imports(
        blocked,
        f"""
        import importlib, json, sys
        for name in {modules!r}:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
    """,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def engine_imports(path: Path) -> set[str]:
    """Engine packages a file imports: by an import statement, or by a module name in a string
    (`importlib.import_module("keras_model.export")` is a second, unwritten contract)."""
    named = {
        node.value.split(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value)
    }
    return (imported_packages(path) | named) & ENGINES


def test_tools_reach_the_engines_only_through_their_capabilities():
    """By import or by a module name in a string: an engine's capabilities (`fmnist.engines`,
    `fmnist.capabilities`) are the only way in (docs/architecture.md)."""
    wrong = sorted(
        str(path.relative_to(REPO))
        for package in TOOLS
        for path in (REPO / package).rglob("*.py")
        if engine_imports(path)
    )
    assert not wrong, f"tools importing a engine module instead of fmnist.engines: {wrong}"


def test_a_planted_engine_import_in_a_tool_is_caught(tmp_path):
    planted = tmp_path / "compare" / "shortcut.py"
    planted.parent.mkdir()
    planted.write_text("def f():\n    from keras_model.model import build_model\n    return build_model\n")
    assert engine_imports(planted) == {"keras_model"}
    planted.write_text('import importlib\n\nEXPORT = importlib.import_module("lightning_model.export")\n')
    assert engine_imports(planted) == {"lightning_model"}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, at module level or inside a function: `from a import b`
    is module a.b when that is a module, else a."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            }
    return {name for name in found if name in known}


def import_cycles(root: Path = REPO) -> list[list[str]]:
    """Every cycle of project modules importing each other (strongly connected components of
    more than one module, or a module importing itself), lazy imports included."""
    files = {_module_name(p, root): p for package in PROJECT for p in (root / package).rglob("*.py")}
    graph = {name: _imported_modules(path, set(files)) - {name} for name, path in files.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return cycles


def test_no_module_imports_itself_round_a_cycle():
    assert import_cycles() == []


def test_a_planted_cycle_is_found(tmp_path):
    for name, target in (("a", "b"), ("b", "a")):
        (tmp_path / "fmnist").mkdir(exist_ok=True)
        (tmp_path / "fmnist" / f"{name}.py").write_text(f"def f():\n    from fmnist import {target}\n")
    for package in PROJECT[:-1]:
        (tmp_path / package).mkdir(exist_ok=True)
    assert import_cycles(tmp_path) == [["fmnist.a", "fmnist.b"]]


#: The modules a project process starts with `python -m`: the one entry point of every job
#: (`fmnist.job`), the command itself (the load test's server, the GPU run's commands) and pip.
STARTED_MODULES = {"fmnist.job", "fmnist_cli", "pip"}
#: Where a process is started other than by the one launcher: the server the load test and the
#: screenshots run (`fmnist serve`, stopped as Ctrl-C would), no job.
OTHER_STARTS = {"serving/process.py"}


def started_modules(path: Path) -> set[str]:
    """Every module a file starts as `[..., "-m", MODULE, ...]`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.List, ast.Tuple)):
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            found |= {b for a, b in zip(values, values[1:]) if a == "-m" and isinstance(b, str)}
    return found


def test_every_job_starts_one_way():
    """One launcher (`fmnist.launch`: the only `subprocess.Popen` of a job) and one entry module
    (`fmnist.job`, whose argv only it writes): a training, an engine's calls, an export, a
    benchmark measurement and a time-to-accuracy run are kinds of job, not modules of their own."""
    started: dict[str, list[str]] = {}
    popen = []
    for package in PROJECT:
        for path in sorted((REPO / package).rglob("*.py")):
            name = str(path.relative_to(REPO))
            for module in started_modules(path):
                started.setdefault(module, []).append(name)
            if "subprocess.Popen(" in path.read_text() and name not in {"fmnist/launch.py", *OTHER_STARTS}:
                popen.append(name)
    assert set(started) <= STARTED_MODULES, started
    assert started["fmnist.job"] == ["fmnist/job.py"]
    assert popen == []


def test_no_file_is_longer_than_450_lines():
    long = {
        str(path.relative_to(REPO)): n
        for package in (*PROJECT, "tests")
        for path in (REPO / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 450
    }
    assert long == {}


def engine_name_uses(path: Path) -> list[str]:
    """Where a file compares something with an engine's name (== / != / in), or keeps a dict keyed
    by engine names: what an engine's declared property or capability should answer instead."""
    names = set(engines.names()) | {"keras", "lightning", "tensorflow", "torch", "jax"}
    found = []

    def constants(node: ast.AST) -> set[str]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Compare)
            and not any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops)
            and not any(ast.unparse(c) == "sys.modules" for c in node.comparators)  # a module's presence
        ):
            hit = set().union(*(constants(n) for n in (node.left, *node.comparators))) & names
            if hit:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} compares with {sorted(hit)}")
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            if len(keys & set(engines.names())) >= 2:
                found.append(
                    f"{path.relative_to(REPO)}:{node.lineno} keys a dict by {sorted(keys & set(engines.names()))}"
                )
    return found


def test_no_tool_or_core_module_compares_an_engine_name():
    """Tools and the core ask an engine (`fmnist.engines`) for a declared property or a
    capability; none decides by an engine's or framework's name."""
    found = [
        use
        for package in (*TOOLS, "executors", "fmnist")
        for path in sorted((REPO / package).rglob("*.py"))
        for use in engine_name_uses(path)
    ]
    assert not found, "\n".join(found)


def test_a_planted_engine_name_comparison_is_caught(tmp_path):
    planted = REPO / "compare" / "_planted_for_test.py"
    try:
        planted.write_text('def f(e):\n    return e.name == "lightning" or e in ("keras", "x")\n')
        assert len(engine_name_uses(planted)) == 2
    finally:
        planted.unlink()
