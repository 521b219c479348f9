"""The import rule, checked on the source: the board side names nothing above it, deployment and the
report contract need no TensorFlow, no module of the product imports itself back (lazy imports included), the
rooms form no circle, and nothing imports the package face."""

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


def _imports(path: Path, strings: bool = True) -> list[tuple[int, str]]:
    """Every module ``path`` imports (at any depth), absolute, and (``strings``) every string that names a module."""
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
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str) and "keras_edge." in node.value:
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


def _product_graph() -> dict[str, set[str]]:
    """Every product module → the product modules it imports, at any depth (lazy and TYPE_CHECKING imports,
    ``importlib.import_module("…")`` strings), plus the package ``__init__`` each import runs on the way."""
    mods = {_module_name(p): p for folder in PACKAGES for p in _sources(folder)}
    graph: dict[str, set[str]] = {}
    for m, p in mods.items():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        names = {n for _, n in _imports(p, strings=False)}   # a module named to start a child is no import
        names |= {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call) and c.args
                  and getattr(c.func, "attr", getattr(c.func, "id", "")) == "import_module"
                  and isinstance(c.args[0], ast.Constant) and isinstance(c.args[0].value, str)}
        deps: set[str] = set()
        for n in names:
            target = n if n in mods else n.rpartition(".")[0] if n.rpartition(".")[0] in mods else None
            if target is None:
                continue
            parts = target.split(".")
            for k in range(1, len(parts) + 1):    # importing a.b.c runs a/__init__ and a/b/__init__ first
                anc = ".".join(parts[:k])
                if anc in mods and not m.startswith(anc + ".") and anc != m:
                    deps.add(anc)
        graph[m] = deps
    return graph


def _room(module: str) -> str:
    """Rooms: each sub-package of device/ and host/ (host's top-level modules are its base room), calibration, face."""
    parts = module.split(".")
    if parts[:2] in (["keras_edge", "device"], ["keras_edge", "host"]):
        p = ROOT / {"device": "device", "host": "host"}[parts[1]] / "/".join(parts[2:3])
        return ".".join(parts[:3]) if len(parts) > 2 and p.is_dir() else ".".join(parts[:2])
    if parts[:2] == ["keras_edge", "calibration"]:
        return "keras_edge.calibration"
    return "keras_edge (face)"


def test_no_import_circles_anywhere_in_the_product():
    graph = _product_graph()
    assert len(graph) > 80, "the graph must cover the whole product"
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_rooms_import_each_other_without_circles():
    rooms: dict[str, set[str]] = {}
    for m, deps in _product_graph().items():
        rooms.setdefault(_room(m), set()).update(_room(d) for d in deps if _room(d) != _room(m))
    assert {"keras_edge.device.contract", "keras_edge.device.engine", "keras_edge.device.run"} <= set(rooms)
    cycle = _cycle(rooms)
    assert cycle is None, "rooms in a circle: " + " → ".join(cycle or [])


def test_nothing_below_the_face_imports_it():
    bad = [f"{m} imports {d}" for m, deps in _product_graph().items() if _room(m) != "keras_edge (face)"
           for d in deps if _room(d) == "keras_edge (face)"]
    assert not bad, "\n".join(bad)


def test_the_product_graph_sees_lazy_and_string_imports(tmp_path):
    fake = ROOT / "device" / "run" / "_layers_probe_tmp.py"
    fake.write_text("def f():\n    from ..engine import core\n", encoding="utf-8")
    try:
        graph = _product_graph()
        assert {"keras_edge.device.engine", "keras_edge.device.engine.core"} <= graph["keras_edge.device.run._layers_probe_tmp"]
    finally:
        fake.unlink()


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_package_face():
    proc = subprocess.run([sys.executable, "-m", "keras_edge", "--version"], capture_output=True, text=True, timeout=60)
    import keras_edge

    assert proc.returncode == 0 and keras_edge.__version__ in proc.stdout
    assert set(keras_edge.__all__) >= {"convert", "open_bundle", "bench", "prune", "deploy", "ConvertConfig"}
