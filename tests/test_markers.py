"""The `workflow` mark keeps `pytest -m "not workflow"` (make unit) free of Snakemake runs, DVC and servers.

Two guards (pyproject.toml registers the marks, --strict-markers refuses unknown ones):
- tests/conftest.py adds `workflow` at collection to every slurm or s3 test and to every test that depends,
  directly or through other fixtures, on a workflow fixture (WORKFLOW_FIXTURES), before `-m` deselects;
- tests/workflow_helpers.py's copy_workflow, run, snakemake_command and fake_venv fail a test without the
  mark: a test that calls them in its body or in a fixture of its own file cannot slip into the unit loop.
"""

import pytest

from tests import workflow_helpers
from tests.workflow_helpers import WORKFLOW_FIXTURES


def test_an_unmarked_test_cannot_copy_or_run_the_workflow(tmp_path):
    helpers = {
        "copy_workflow": lambda: workflow_helpers.copy_workflow(tmp_path / "w"),
        "run": lambda: workflow_helpers.run(tmp_path, "-n"),
        "snakemake_command": lambda: workflow_helpers.snakemake_command("-n"),
        "fake_venv": lambda: workflow_helpers.fake_venv(tmp_path),
    }
    for name, call in helpers.items():
        message = f"test_markers.py::.* uses .*{name}.* not marked workflow"
        with pytest.raises(workflow_helpers.UnmarkedWorkflowTest, match=message):
            call()
    assert not any(tmp_path.iterdir()), "refused before copying anything"


def test_workflow_fixtures_slurm_and_s3_imply_the_workflow_mark(request):
    """Over the tests this session runs: under `-m "not workflow"`, none of them needs a workflow fixture."""
    for item in request.session.items:
        marks = {name for name in ("workflow", "slurm", "s3") if item.get_closest_marker(name)}
        used = WORKFLOW_FIXTURES.keys() & set(item.fixturenames)
        if used or marks & {"slurm", "s3"}:
            assert "workflow" in marks, item.nodeid
        assert {WORKFLOW_FIXTURES[name] for name in used} - {None} <= marks, item.nodeid  # s3_server: s3, ...
