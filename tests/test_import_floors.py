"""The floors hold: each module imports only from its own floor or below, and no modules import each other in a circle.

The floors are those of docs/architecture.md, lowest first.  Imports are read from the source (every
``import`` and ``from ... import`` anywhere in a module, including inside functions), except those under
``if TYPE_CHECKING:``, which name types for the type checker and are never executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cquin"

# module (or package prefix) -> floor; the longest matching prefix decides.
FLOORS: dict[str, int] = {
    # 0: leaf helpers and the YAML/config readers everything else builds on
    "cquin": 0,
    "cquin.exceptions": 0,
    "cquin.privacy": 0,
    "cquin.files": 0,
    "cquin.workspace": 0,
    "cquin.signals": 0,
    "cquin.faults": 0,
    "cquin.outfile": 0,
    "cquin.money": 0,
    "cquin.redact": 0,
    "cquin.pseudonymise": 0,
    "cquin.storefile": 0,
    "cquin.storeguards": 0,
    "cquin.config": 0,
    "cquin.schemas": 0,
    "cquin.rulesets": 0,
    # 1: the canonical dataset
    "cquin.dataset": 1,
    "cquin.demo": 1,
    "cquin.loadout": 1,
    # 2: adapters and loading (they see the dataset, never the engine)
    "cquin.adapters": 2,
    "cquin.hookspecs": 2,
    "cquin.plugins": 2,
    "cquin.mapping": 2,
    "cquin.loading": 2,
    # 3: the engine and what is computed from its results
    "cquin.engine": 3,
    "cquin.policytest": 3,
    "cquin.disclosure": 3,
    "cquin.measure": 3,
    "cquin.testing": 3,
    # 4: the audit store
    "cquin.store": 4,
    "cquin.verify": 4,
    # 5: the commissioning cycle's records and comparisons, read from the store
    "cquin.cycle": 5,
    # 6: outputs
    "cquin.render": 6,
    "cquin.report": 6,
    # 7: the use cases
    "cquin.runner": 7,
    "cquin.many": 7,
    "cquin.serve": 7,
    "cquin.cycle.reconcile": 7,  # reconciles a return with the submission cquin writes (an output)
    # 8: the command line
    "cquin.cli": 8,
    "cquin.commands": 8,
    "cquin.__main__": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor(module: str) -> int:
    best = max((prefix for prefix in FLOORS if module == prefix or module.startswith(prefix + ".")), key=len)
    return FLOORS[best]


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str) -> set[str]:
    """The cquin modules ``module`` imports (a ``from package import name`` counts the submodule when it is one)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == "cquin")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == "cquin":
                    submodules = {f"{target}.{a.name}" for a in child.names} & MODULES.keys()
                    found.update(submodules)
                    if len(submodules) < len(child.names):  # a name defined in the module itself, not a submodule
                        found.add(target)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_floor():
    assert all(floor(m) >= 0 for m in MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_floor_or_below(module: str):
    upward = sorted(f"{t} (floor {floor(t)})" for t in GRAPH[module] if floor(t) > floor(module))
    assert not upward, f"{module} (floor {floor(module)}) imports from above: {', '.join(upward)}"


def test_no_modules_import_each_other_in_a_circle():
    """Tarjan's strongly connected components: any component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                connect(w)
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
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            connect(v)
    assert not cycles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_walk_sees_imports_inside_functions_and_ignores_type_checking_ones():
    # cquin.runner imports the impact module inside a function; cquin.hookspecs names the adapter registry for types only.
    assert "cquin.engine.impact" in GRAPH["cquin.runner"]
    assert "cquin.adapters.base" not in GRAPH["cquin.hookspecs"]


def test_no_module_outside_the_engine_and_no_test_reads_an_engine_table_by_name():
    """The evaluation's relations are read through ``RunResult.trace`` (cquin.engine.evaluation.Trace), never by name."""
    import re

    by_name = re.compile(r"\b(FROM|JOIN)\s+(decisions|cohort_members|e_[a-z_0-9]+)\b", re.IGNORECASE)
    tests = Path(__file__).resolve().parent
    files = [p for p in PACKAGE.rglob("*.py") if "engine" not in p.relative_to(PACKAGE).parts] + list(tests.rglob("*.py"))
    offenders = [
        f"{p.relative_to(PACKAGE.parent)}:{n}"
        for p in files
        if p != Path(__file__).resolve()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if by_name.search(line) and not line.lstrip().startswith(("#", "e.g."))
    ]
    assert not offenders, "reads an engine table by name: " + ", ".join(offenders)
