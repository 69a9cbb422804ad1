"""The package's shape: no import cycle, engine and evaluation apart, one runtime."""

import ast
from pathlib import Path

import scm_dist

PACKAGE = Path(scm_dist.__file__).resolve().parent
LAUNCH = PACKAGE.parent / "launch"
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """scm_dist modules ``path`` imports (relative imports resolved)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    modules = {_module(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != module}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {_module(p): _imports(p, top_level_only) for p in PACKAGE.rglob("*.py")}


def test_no_import_cycle_at_module_level():
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_engine_and_evaluation_never_import_each_other():
    graph = _graph(top_level_only=False)  # imports inside functions count too
    for module, imported in graph.items():
        for other in imported:
            for a, b in (
                ("scm_dist.engine", "scm_dist.evaluation"),
                ("scm_dist.evaluation", "scm_dist.engine"),
            ):
                assert not (module.startswith(a) and other.startswith(b)), f"{module} imports {other}"
            # only the application layer (and the benchmarks, which drive it) sees both halves
            if module.startswith(("scm_dist.engine", "scm_dist.evaluation")) and not module.endswith(
                ".benchmark"
            ):
                assert other not in ("scm_dist.app", "scm_dist.cli"), f"{module} imports {other}"


def test_only_the_runtime_reads_the_launcher_variables():
    readers = []
    for path in [*PACKAGE.rglob("*.py"), *LAUNCH.rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            named = node.value if isinstance(node, ast.Constant) else getattr(node, "arg", None)
            if isinstance(node, (ast.Constant, ast.keyword)) and named in LAUNCHER_VARIABLES:
                readers.append(_module(path) if path.is_relative_to(PACKAGE) else path.name)
    # spawn.py sets them for the processes it starts, as a launcher does; nobody else names them
    assert sorted(set(readers)) == ["scm_dist.engine.spawn", "scm_dist.runtime"], readers
