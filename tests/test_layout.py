"""The house stays easy to change: modules and functions short enough to read at once, every
document the code cites present in the repository."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "hdrvid").rglob("*.py"))
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 60


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_short(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name}: split it by responsibility"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: {long}"


def test_every_cited_document_is_in_the_repository():
    """Code and benchmarks cite design notes as docs/...md paths; each must exist here (not in
    a folder beside the repository)."""
    scripts = SOURCES + sorted((REPO / "benchmarks").glob("*.py"))
    cited = {match for path in scripts
             for match in re.findall(r"docs/[\w/.-]+\.md", path.read_text())}
    assert cited, "no citations found: the pattern is stale"
    assert sorted(c for c in cited if not (REPO / c).is_file()) == []
