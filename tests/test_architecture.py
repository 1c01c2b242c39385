"""The shape of the house, checked from the source (nothing is imported).

Imports run one way (no circles; models import nothing from the rest). The formatter lays out
the code: `# fmt: skip` is kept for literal tables, which read better aligned, and nothing
else. Length is a symptom rather than a target: a file of several hundred lines or a function
longer than a screen usually does two jobs and is split where one ends, never packed to fit.
Where a unit is long on purpose (a declarative table), it is declared below with the reason,
and the declaration goes when the unit shrinks."""

import ast
import io
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "resnets"
FILE_LINES = 350  # above this a file is read as doing two jobs unless declared
FUNCTION_LINES = 60  # a screen
LONG_ON_PURPOSE: dict[str, str] = {}  # "path" or "path:function" -> why it is long
# what models may import from the rest: leaves that import nothing of the package but errors
LEAVES = {"resnets.errors", "resnets.files", "resnets.deprecation", "resnets.options"}


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package that `name` imports, at the top or inside functions alike
    (an import inside a function still ties the two files together)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{a.name}" for a in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            if c in known and c != name:
                found.add(c)
                break
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def package_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_no_import_cycles_inside_the_package():
    assert cycles(package_graph()) == []


def test_models_import_nothing_from_the_rest_but_leaves():
    graph = package_graph()
    for name, deps in graph.items():
        if name.startswith("resnets.models"):
            outside = {d for d in deps if not d.startswith("resnets.models")}
            assert outside <= LEAVES, (name, outside)
    assert {leaf: graph[leaf] - LEAVES for leaf in LEAVES} == {leaf: set() for leaf in LEAVES}


def long_units() -> dict[str, int]:
    """Files over FILE_LINES and functions over FUNCTION_LINES lines, as "path[:function]"."""
    long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name, text = str(path.relative_to(PACKAGE)), path.read_text()
        if (n := len(text.splitlines())) > FILE_LINES:
            long[name] = n
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if (n := node.end_lineno - node.lineno + 1) > FUNCTION_LINES:
                long[f"{name}:{node.name}"] = n
    return long


def test_a_long_file_or_function_is_long_on_purpose_and_says_why():
    """A unit that grew past a screen is split at its seam, or declared in LONG_ON_PURPOSE
    with the reason; a declaration whose unit is no longer long goes."""
    assert set(long_units()) == set(LONG_ON_PURPOSE)


def is_literal_table(node: ast.AST) -> bool:
    """A constant, or a dict / list / tuple / set built only of constants."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return True  # -1
    if isinstance(node, ast.Dict):
        return all(k is not None and is_literal_table(k) for k in node.keys) and all(
            map(is_literal_table, node.values)
        )
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(map(is_literal_table, node.elts))
    return False


def skipped_statements(text: str) -> list[ast.stmt]:
    """The statements that end on a line carrying a `# fmt: skip` comment."""
    lines = {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(text).readline)
        if token.type == tokenize.COMMENT and token.string.replace(" ", "") == "#fmt:skip"
    }
    return [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.stmt) and node.end_lineno in lines
    ]


def packed_lines(text: str) -> list[int]:
    """Lines where `# fmt: skip` keeps the formatter off anything but a literal table."""
    return sorted(
        node.lineno
        for node in skipped_statements(text)
        if not (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and node.value is not None
            and is_literal_table(node.value)
        )
    )


def test_the_formatter_is_skipped_only_on_literal_tables():
    packed = {
        str(path.relative_to(ROOT)): lines
        for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")])
        if (lines := packed_lines(path.read_text()))
    }
    assert packed == {}


def test_the_literal_table_check_tells_a_table_from_packed_code():
    assert packed_lines("SIZES = {10: (1, 1), 18: (-2, 2)}  # fmt: skip\n") == []
    packed = "x = f(a); y = g(b)  # fmt: skip\nif x: y = 1  # fmt: skip\nz = [1, 2]\n"
    assert packed_lines(packed) == [1, 1, 2]


def test_the_code_is_as_the_formatter_lays_it_out():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [ruff, "format", "--check", str(ROOT / "src"), str(ROOT / "tests")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
