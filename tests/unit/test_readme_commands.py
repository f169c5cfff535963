"""README.md's commands as tests/readme_runner.py reads them: every one has a runner (tests/workflow/test_readme.py
runs them) and none puts a target after an option that takes several values."""

import re
import shlex

from tests.readme_runner import RUNNERS, readme_commands, untagged_command_blocks
from tests.workflow_helpers import REPO


def test_extraction_handles_continuations_and_comments():
    text = "```bash\na --x 1 \\\n    --y 2   # two\n# note\nb  # c\nb\n```\n```\nnot a command\n```\n"
    assert readme_commands(text) == ["a --x 1 --y 2", "b"]


def test_every_readme_command_has_a_runner():
    text = (REPO / "README.md").read_text()
    commands = readme_commands(text)
    assert not untagged_command_blocks(text), "tag command blocks with ```bash so the tests run them"
    assert [c for c in commands if c not in RUNNERS] == [], "README commands without a runner in RUNNERS"
    assert [c for c in RUNNERS if c not in commands] == [], "RUNNERS entries the README no longer has"


def test_targets_come_before_options_that_take_several_values():
    """Issue 12: `--configfile a.yaml results/miou.parquet` reads the target as a second config file."""
    several = r"--(configfiles?|config|default-resources|default-res|set-resources|set-threads)\b|-C\b"
    for command in readme_commands():
        words = shlex.split(command)  # a quoted value (dataset='{kind: ...}') is one word
        for i, word in enumerate(words):
            if re.fullmatch(several, word):
                rest = words[i + 1 :]
                values = rest[
                    : next((j for j, w in enumerate(rest) if w.startswith("-") or w in ("&&", "|", ";")), len(rest))
                ]
                assert all("=" in v or v.endswith((".yaml", ".yml", ".json")) for v in values), command
