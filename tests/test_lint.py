"""The code base passes ruff's lint and is formatted as ruff formats it (pyproject.toml, [tool.ruff])."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflow_helpers import REPO

RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff_is_clean(command):
    result = subprocess.run([str(RUFF), *command], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
