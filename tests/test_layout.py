"""The shape of the house: modules stay small, imports flow one way without cycles (lazy imports
included), and model files are read and written in one place."""

import ast
from pathlib import Path

import kdistill

PACKAGE = Path(kdistill.__file__).parent
FOUNDATIONS = {"files", "trust", "categoricals", "weights", "data", "models", "teachers", "losses", "methods", "taps",
               "metrics"}
ABOVE = {"cli", "study", "tune", "config", "engine", "modes", "report", "export", "sklearn"}  # built on the foundations


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name: str, path: Path) -> set[str]:
    """Every kdistill module ``name`` imports, anywhere in the file (lazy imports included), with
    the packages an import runs on the way (``a.b.c`` runs ``a.b`` first)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if parts[0] == "kdistill"}
    modules = dict(_modules())
    return {m for m in found if m in modules and m != name and not name.startswith(m + ".")}


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in _modules() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"split these into packages: {long}"


def test_imports_have_no_cycles():
    graph = {name: _imports(name, path) for name, path in _modules()}
    cycles, done = [], set()

    def visit(node, trail):
        if node in trail:
            cycles.append(trail[trail.index(node):] + [node])
            return
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_foundations_never_import_what_is_built_on_them():
    wrong = {}
    for name, path in _modules():
        if "." in name and name.split(".")[1] in FOUNDATIONS:
            above = sorted(m for m in _imports(name, path) if m.split(".")[1] in ABOVE)
            if above:
                wrong[name] = above
    assert not wrong, wrong


def _third_party(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_safetensors_is_imported_by_one_module():
    assert [name for name, path in _modules() if "safetensors" in _third_party(path)] == ["kdistill.weights"]
