"""The library's layout: no import cycles between its modules, layers that only import
downwards, and Streamlit only in the app's layers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "arpviz"

#: The layers, bottom to top: ``(name, what it is, its packages and modules)``. A module belongs
#: to the layer that names it or a package above it; the core is every module no layer names. A
#: module may import its own layer (without cycles) and the layers below it, nothing above.
LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("core", "the library: operator, models, data, training, checkpoints, geometry, palette", ()),
    ("commands", "command-line packages over the core (they do not import each other)",
     ("arpviz.explain", "arpviz.analysis")),
    ("explorer", "the app-facing library: what the app calls, no Streamlit",
     ("arpviz.explorer",)),
    ("app", "the Streamlit-side helpers of the pages", ("arpviz.app",)),
    ("launch", "the app as the wheel carries it and arpviz-app, which runs it",
     ("arpviz.webapp", "arpviz.app_launcher")),
)

#: The imports that go up a layer, each with its reason; the test fails on any other and on one
#: that is no longer there.
UPWARD: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every arpviz module and the arpviz modules it imports, anywhere (functions and ``if
    TYPE_CHECKING:`` blocks included: a type-only import is a dependency too)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py") if "webapp" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop the edges into a package's ``__init__`` from its own submodules (re-exports)."""
    return {name: {t for t in targets if not name.startswith(t + ".")}
            for name, targets in graph.items()}


def test_no_import_cycles() -> None:
    cycles = _cycles(_without_packages(_imports()))
    assert cycles == [], f"import cycles between arpviz modules: {cycles}"


def _layer(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``'s layer."""
    for index, (_, _, names) in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in names):
            return index
    return 0


def test_layers_only_import_downwards() -> None:
    graph = _imports()
    upward = {(module, target) for module, targets in graph.items() for target in targets
              if _layer(target) > _layer(module)}
    unexpected = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
                  for m, t in sorted(upward - set(UPWARD))]
    assert unexpected == [], f"imports up a layer: {unexpected}"
    assert set(UPWARD) <= upward, f"no longer imported: {sorted(set(UPWARD) - upward)}"


def test_only_the_app_imports_streamlit() -> None:
    graph_files = [p for p in ROOT.rglob("*.py") if "webapp" not in p.parts]
    offenders = [str(p.relative_to(ROOT.parent)) for p in graph_files
                 if ("import streamlit" in p.read_text(encoding="utf-8")
                     or "from streamlit" in p.read_text(encoding="utf-8"))
                 and LAYERS[_layer(_module_name(p))][0] not in ("app", "launch")]
    # the app's helpers (arpviz.app) draw with Streamlit; the launcher imports Streamlit's CLI
    # inside main() to start the app
    assert offenders == []


PAGES = ROOT.parent / "pages"
#: The app's page scripts: ``pages/`` holds these and nothing else.
PAGE_SCRIPTS = ("adaptivity.py", "appendix_a.py", "explore.py", "gallery.py", "retrieval.py",
                "rp_vs_arp.py", "training.py")
#: The longest a page script may be: widgets, one library call, rendering.
MAX_PAGE_LINES = 120
#: The longest any module of the package may be.
MAX_MODULE_LINES = 600


def test_pages_hold_only_thin_page_scripts() -> None:
    assert sorted(p.name for p in PAGES.iterdir() if p.name != "__pycache__") == \
        sorted(PAGE_SCRIPTS)
    long = {p.name: n for p in PAGES.glob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_PAGE_LINES}
    assert long == {}, f"page scripts over {MAX_PAGE_LINES} lines: {long}"
    registered = (ROOT.parent / "app.py").read_text(encoding="utf-8")
    assert all(f'"pages/{name}"' in registered for name in PAGE_SCRIPTS)


def test_no_page_touches_the_session_state_by_key() -> None:
    """What the user looks at is one typed state (``arpviz.app.state``): only that module reads
    or writes ``st.session_state``; pages and the other helpers go through ``app_state`` and
    ``bind``."""
    scripts = [*PAGES.glob("*.py"), ROOT.parent / "app.py",
               *(p for p in (ROOT / "app").glob("*.py") if p.name != "state.py")]
    offenders = [str(p.relative_to(ROOT.parent)) for p in scripts
                 if "session_state" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_no_module_is_over_the_limit() -> None:
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"
