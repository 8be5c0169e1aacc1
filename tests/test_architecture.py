"""The folder tree is the architecture: imports only go down the layers, engines never reach into each other, no cycles.

Every import in the package (lazy ones inside functions included) is read
from the source with `ast`, so the rules hold for code that a test run
never executes too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"lipstream": "lipstream", "lipstream.stream": "stream", "lipstream.pipeline": "pipeline", "lipstream.models": "models", "lipstream.server": "server"}

# What each layer may import (besides itself). Lower layers never import higher ones.
LAYERS: dict[str, tuple[str, ...]] = {
    "lipstream.errors": (),
    "lipstream.config": ("lipstream.errors",),
    "lipstream.models": ("lipstream.errors", "lipstream.config", "lipstream.__init__"),
    "lipstream.stream": ("lipstream.errors", "lipstream.config"),
    "lipstream.pipeline": ("lipstream.errors", "lipstream.config", "lipstream.models", "lipstream.stream"),
    "lipstream.server": ("lipstream.errors", "lipstream.config", "lipstream.models", "lipstream.stream", "lipstream.pipeline"),
}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if package == "lipstream" and parts[0] != "commands" and len(parts) > 1:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = modules()


def imports(name: str, path: Path) -> set[str]:
    """The package modules `name` imports, resolved to modules (not names inside them)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES or t == "lipstream")
    return {("lipstream.__init__" if t == "lipstream" else t) for t in out} - {name}


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def layer(module: str) -> str | None:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def test_the_module_list_is_complete():
    assert {"lipstream.pipeline.engines.shared.rearticulate", "lipstream.server.session", "lipstream.commands.sync", "lipstream.cli"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n)))
def test_imports_go_down_the_layers(name):
    own = layer(name)
    allowed = LAYERS[own]  # type: ignore[index]
    bad = [t for t in GRAPH[name] if layer(t) != own and not any(t == a or t.startswith(a + ".") for a in allowed)]
    assert not bad, f"{name} imports {bad}"


def engine_of(module: str) -> str | None:
    prefix = "lipstream.pipeline.engines."
    if not module.startswith(prefix):
        return None
    room = module[len(prefix) :].split(".")[0]
    return None if room in ("base", "shared") else room


def test_no_engine_reaches_into_another_and_shared_helpers_know_no_engine():
    for name, targets in GRAPH.items():
        for target in targets:
            own, other = engine_of(name), engine_of(target)
            if other is not None and own is not None:
                assert own == other, f"{name} imports {target}: engines do not import each other"
            if name.startswith("lipstream.pipeline.engines.shared") or name.startswith("lipstream.pipeline.engines.base"):
                assert other is None, f"{name} imports {target}: shared helpers know no engine"


def test_rooms_of_the_pipeline_point_one_way():
    # faces know nothing of engines, jobs or metrics; engines nothing of jobs or metrics; metrics nothing of jobs
    forbidden = {
        "lipstream.pipeline.faces": ("lipstream.pipeline.engines", "lipstream.pipeline.jobs", "lipstream.pipeline.metrics"),
        "lipstream.pipeline.engines": ("lipstream.pipeline.jobs", "lipstream.pipeline.metrics"),
        "lipstream.pipeline.metrics": ("lipstream.pipeline.jobs",),
        "lipstream.pipeline.runner": ("lipstream.pipeline.engines", "lipstream.pipeline.jobs", "lipstream.pipeline.faces"),
    }
    for name, targets in GRAPH.items():
        for room, bad in forbidden.items():
            if name == room or name.startswith(room + "."):
                hits = [t for t in targets if any(t == b or t.startswith(b + ".") for b in bad)]
                assert not hits, f"{name} imports {hits}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_a_cycle_would_be_found():
    GRAPH["lipstream.errors"] = GRAPH["lipstream.errors"] | {"lipstream.config"}
    try:
        with pytest.raises(AssertionError, match="import cycle"):
            test_no_import_cycles()
    finally:
        GRAPH["lipstream.errors"] = GRAPH["lipstream.errors"] - {"lipstream.config"}
