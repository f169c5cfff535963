"""Process set-up (wsss.runtime.setup): the CPU steps never load torch, the torch steps get its settings."""

import ast
import subprocess
import sys

import yaml

from tests.workflow_helpers import REPO

SCRIPTS = REPO / "scripts"
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
# Local steps that need torch without a GPU: the ImageNet weights are converted and checked with torch
TORCH_CPU_STEPS = {"pretrained_weights"}


def imports(script) -> list[str]:
    """The script's top-level import statements, as source (Snakemake provides `snakemake` itself)."""
    tree = ast.parse(script.read_text())
    return [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


def gpu_steps() -> set[str]:
    resources = yaml.safe_load(PROFILE.read_text())["set-resources"]
    return {rule for rule, asked in resources.items() if asked.get("gpu")}


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_cpu_steps_never_load_torch():
    """Importing torch and switching on its deterministic algorithms costs a CPU job ~3 s (a CRF shard of the
    tiny demo took 4.1 s with it), so the steps that do not compute with torch must not import it."""
    cpu_steps = sorted(p for p in SCRIPTS.glob("*.py") if p.stem not in gpu_steps() | TORCH_CPU_STEPS)
    assert {"crf", "pseudo_masks", "merge_cams", "evaluate_stage", "miou_table"} <= {p.stem for p in cpu_steps}
    checks = "".join(
        f"{'; '.join(imports(script))}\nif 'torch' in sys.modules: print({script.stem!r})\n" for script in cpu_steps
    )
    setup = "from wsss.runtime import setup\nsetup(None, 1, seed=0)\nprint('torch' in sys.modules)\n"
    assert run_python(f"import sys\n{checks}{setup}").split() == ["False"]


def test_torch_steps_load_torch_before_set_up():
    """setup configures torch only when it is loaded: each GPU step imports torch-based modules (wsss.nets)
    and calls setup after its last import."""
    for step in sorted(gpu_steps()):
        body = ast.parse((SCRIPTS / f"{step}.py").read_text()).body
        statements = [ast.unparse(node) for node in body]
        last_import = max(i for i, node in enumerate(body) if isinstance(node, (ast.Import, ast.ImportFrom)))
        assert any(s.startswith("from wsss.nets.") for s in statements[: last_import + 1]), step
        assert min(i for i, s in enumerate(statements) if "setup(" in s) > last_import, step


def test_setup_configures_torch_when_it_is_loaded():
    out = run_python(
        "import torch\nfrom wsss.runtime import setup\nsetup(None, 1, seed=7)\n"
        "print(torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.initial_seed())"
    )
    assert out.split() == ["1", "True", "7"]
