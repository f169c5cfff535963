"""The code base passes ruff's lint and is formatted as ruff formats it (pyproject.toml, [tool.ruff]), and the
library's imports keep the layers of docs/architecture.md ([tool.importlinter])."""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflow_helpers import REPO

RUFF = Path(sys.executable).with_name("ruff")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff_is_clean(command):
    result = subprocess.run([str(RUFF), *command], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def lint_imports(root: Path, src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, env=env)


def test_the_import_contracts_are_kept():
    result = lint_imports(REPO, REPO / "src")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("nets/hardware.py", "from wsss.training.loop import fit", "Layers import downward only"),
        ("pipeline/resources.py", "import torch", "import no torch"),
        ("seeds/masks.py", "from wsss.seeds import random_walk", "No import cycles"),
    ],
    ids=["upward", "torch-in-pipeline", "cycle"],
)
def test_a_broken_layer_is_named(tmp_path, module, line, contract):
    """A copy of the library with one forbidden import: lint-imports fails and names the contract it breaks."""
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / "src/wsss" / module, "a") as handle:
        handle.write(f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0
    assert any(contract in text and "BROKEN" in text for text in result.stdout.splitlines()), result.stdout[-3000:]


def test_no_test_module_imports_another():
    """Shared helpers live in helper modules (tests/helpers.py, workflow_helpers.py, readme_runner.py, ...),
    never in a test module or conftest.py, so each test module can be run, moved or deleted alone."""
    offenders = []
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{'.' * node.level}{node.module or ''}"] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(re.search(r"(^|\.)(test_\w+|conftest)($|\.)", name) for name in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, offenders
