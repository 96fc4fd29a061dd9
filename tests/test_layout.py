"""The package layout shows the architecture: methods over shared parts, no method importing another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "weak2strong"
METHODS = ("generalize", "search", "extrapolate", "prune")
# shared parts, lowest first: each may import only what stands before it in its own list
SHARED = ("errors", "settings", "paths", "fileio", "manifest", "distributed", "wheels", "tracking", "data", "models",
          "runs", "report", "scoring", "training", "tune")  # fmt: skip


# Above the methods: the command registry (it names each command's runner by string, so it
# imports no method) and what runs, shows and lists commands, lowest first; each may import
# the shared parts and what stands before it here, and never a method.
ORCHESTRATION = (
    "commands",
    "replicates",
    "check",
    "finished_runs",
    "invocation",
    "cli_commands",
    "cli",
)


def _imports(folder_or_file: Path) -> set[str]:
    """The weak2strong top-level names imported anywhere under a module or subpackage."""
    files = [folder_or_file] if folder_or_file.is_file() else sorted(folder_or_file.rglob("*.py"))
    found: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "weak2strong":
                    found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "weak2strong" and len(parts) > 1:
                        found.add(parts[1])
    return found


def _location(name: str) -> Path:
    folder = PACKAGE / name
    return folder if folder.is_dir() else PACKAGE / f"{name}.py"


@pytest.mark.parametrize("method", METHODS)
def test_no_method_imports_another(method):
    others = set(METHODS) - {method}
    assert not _imports(_location(method)) & others
    assert not _imports(_location(method)) & {"finished_runs", "invocation", "cli", "check"}


@pytest.mark.parametrize("index", range(len(SHARED)))
def test_shared_parts_import_only_lower_ones(index):
    name = SHARED[index]
    allowed = set(SHARED[: index + 1])
    assert _imports(_location(name)) <= allowed, _imports(_location(name)) - allowed


@pytest.mark.parametrize("index", range(len(ORCHESTRATION)))
def test_orchestration_imports_only_shared_parts_and_lower_orchestration(index):
    name = ORCHESTRATION[index]
    allowed = set(SHARED) | set(ORCHESTRATION[:index])
    assert _imports(_location(name)) <= allowed, _imports(_location(name)) - allowed


def test_every_module_has_a_place_in_the_layering():
    placed = set(SHARED) | set(METHODS) | set(ORCHESTRATION)
    found = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert found == placed, (found - placed, placed - found)


# Files and functions that fit in a head (issue 26): split along a seam before crossing these.
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_no_source_file_or_function_is_too_long_to_read_at_once():
    import ast

    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text("utf-8")
        name = path.relative_to(PACKAGE)
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long


def test_each_registry_holds_exactly_the_choices_its_setting_allows():
    """A registry and the `Literal` its setting is typed with name the same things, so config
    loading refuses exactly what no registry entry could run."""
    import typing

    from weak2strong.generalize.config import GeneralizeConfig
    from weak2strong.generalize.strategies import STRATEGIES as GENERALIZE_STRATEGIES
    from weak2strong.prune.lottery import RULES, LotterySettings
    from weak2strong.search import backends, methods
    from weak2strong.search.config import SearchConfig
    from weak2strong.settings import literal_choices
    from weak2strong.tune.config import TuneConfig
    from weak2strong.tune.pairs import PAIR_SOURCES
    from weak2strong.tune.tuning import TRAINERS

    def choices(cls: type, field: str) -> set[object]:
        found = literal_choices(typing.get_type_hints(cls)[field])
        assert found is not None, f"{cls.__name__}.{field} is not typed with a Literal"
        return set(found) - {"all"}

    assert choices(SearchConfig, "methods") == set(methods.REGISTRY)
    assert choices(SearchConfig, "backend") == set(backends.REGISTRY)
    assert choices(GeneralizeConfig, "strategies") == set(GENERALIZE_STRATEGIES)
    assert choices(LotterySettings, "baselines") == set(RULES)
    assert choices(TuneConfig, "method") == set(TRAINERS)
    assert choices(TuneConfig, "preferences") == set(PAIR_SOURCES)
