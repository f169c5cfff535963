"""The folder decides the loop: `make unit` runs tests/unit, `make test` both folders. A test outside
tests/workflow/ cannot copy or run the workflow (tests/workflow_helpers.py refuses), and the workflow
fixtures (tests/workflow/conftest.py) are out of its reach."""

import pytest

from tests import workflow_helpers
from tests.workflow_helpers import REPO


def test_a_unit_test_cannot_copy_or_run_the_workflow(tmp_path):
    helpers = {
        "copy_workflow": lambda: workflow_helpers.copy_workflow(tmp_path / "w"),
        "copy_finished_run": lambda: workflow_helpers.copy_finished_run(REPO / "config", tmp_path / "c"),
        "run": lambda: workflow_helpers.run(tmp_path, "-n"),
        "snakemake_command": lambda: workflow_helpers.snakemake_command("-n"),
        "fake_venv": lambda: workflow_helpers.fake_venv(tmp_path),
        "dry_run_plans": lambda: workflow_helpers.dry_run_plans(tmp_path, [((), ("tiny.yaml",))]),
    }
    for name, call in helpers.items():
        message = f"test_layout.py::.* uses .*{name}.* not in tests/workflow/"
        with pytest.raises(workflow_helpers.NotAWorkflowTest, match=message):
            call()
    assert not any(tmp_path.iterdir()), "refused before copying anything"


def test_a_unit_test_cannot_reach_the_workflow_fixtures(request):
    for name in ("tiny_reference", "dvc_origin", "s3_server"):
        with pytest.raises(pytest.FixtureLookupError):
            request.getfixturevalue(name)


def test_every_test_module_is_in_one_of_the_two_folders():
    tests = REPO / "tests"
    folders = (tests / "unit", tests / "workflow")
    stray = sorted(p.relative_to(REPO).as_posix() for p in tests.rglob("test_*.py") if p.parent not in folders)
    assert stray == [], "test modules go in tests/unit/ or tests/workflow/"
