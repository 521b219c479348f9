"""The import rule, checked on the source: the board side names nothing above it, deployment and the
report contract need no TensorFlow, and the rooms of host/ import each other without circles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# repository folder → installed package
PACKAGES = {"face": "keras_edge", "host": "keras_edge.host", "device": "keras_edge.device",
            "calibration": "keras_edge.calibration"}
ABOVE_DEVICE = ("keras_edge.host", "keras_edge.calibration", "keras_edge.cli", "keras_edge.commands.board",
                "keras_edge.options", "keras_edge.api")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    base = PACKAGES[parts[0]].split(".")
    parts = base + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (at any depth), absolute, and every string that names a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "keras_edge." in node.value:
            found.append((node.lineno, node.value))
    return found


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _module_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.lineno, a.name if isinstance(n, ast.Import) else n.module or "") for n in tree.body
            if isinstance(n, (ast.Import, ast.ImportFrom)) for a in (n.names if isinstance(n, ast.Import) else n.names[:1])]


def test_device_names_nothing_above_it():
    bad = [f"{p.relative_to(ROOT)}:{line}: {name[:80]}" for p in _sources("device") for line, name in _imports(p)
           if any(up in name for up in ABOVE_DEVICE) or name in ("keras_edge", "keras_edge.__version__")]
    bad += [f"{p.relative_to(ROOT)}:{line}: {name} at module level" for p in _sources("device")
            for line, name in _module_level_imports(p) if name.split(".")[0] in ("tensorflow", "keras", "tf_keras")]
    assert not bad, "device/ must not import or name anything above it:\n" + "\n".join(bad)


def test_the_check_sees_an_import_string(tmp_path, monkeypatch):
    # the rule must catch importlib strings, not only import statements
    fake = ROOT / "device" / "_layers_probe_tmp.py"
    fake.write_text('import importlib\nm = importlib.import_module("keras_edge.host.deploy")\n', encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match="_layers_probe_tmp.py:2"):
            test_device_names_nothing_above_it()
    finally:
        fake.unlink()


@pytest.mark.parametrize("folder", ["host/deploy"])
def test_deployment_imports_no_tensorflow_in_its_source(folder):
    bad = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in _sources(folder) for line, name in _imports(p)
           if name.split(".")[0] in ("tensorflow", "keras")
           or name.startswith(("keras_edge.host.convert", "keras_edge.host.prune", "keras_edge.host.tfenv"))]
    assert not bad, "\n".join(bad)


def test_deploy_and_report_contract_load_without_tensorflow():
    code = ("import sys; import keras_edge.commands.deploy, keras_edge.host.deploy.remote, keras_edge.host.report.contract, "
            "keras_edge.api, keras_edge.cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _graph(folder: str) -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in _sources(folder)}
    return {m: {n for _, n in _imports(p) for cand in (n, n.rpartition(".")[0]) if cand in mods and cand != m
                for n in [cand]}
            for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


@pytest.mark.parametrize("room", ["host/prune", "host/convert", "host/deploy", "host/report"])
def test_no_import_circles_in_a_room(room):
    graph = {m: {n for n in deps if not n.endswith("__init__")} for m, deps in _graph(room).items()}
    package = PACKAGES["host"] + "." + room.split("/")[1]
    graph.pop(package, None)  # the package face re-exports its modules; it is not imported by them
    for deps in graph.values():
        deps.discard(package)
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_package_face():
    proc = subprocess.run([sys.executable, "-m", "keras_edge", "--version"], capture_output=True, text=True, timeout=60)
    import keras_edge

    assert proc.returncode == 0 and keras_edge.__version__ in proc.stdout
    assert set(keras_edge.__all__) >= {"convert", "open_bundle", "bench", "prune", "deploy", "ConvertConfig"}
