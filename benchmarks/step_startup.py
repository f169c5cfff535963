"""How long each step's process takes to start: a fresh Python running the imports of its entry script in
scripts/ and wsss.runtime.setup, as a Snakemake job does before any work. On the tiny demo most jobs do
a second or less of work, so this start is most of their time.

    .venv/bin/python benchmarks/step_startup.py [--repeats 3]

Prints, per step, the median seconds over --repeats starts and whether the step loads torch (the CPU
steps must not: importing torch and switching on its deterministic algorithms costs ~3 s per job).
"""

from __future__ import annotations

import argparse
import ast
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PROBE = "\nfrom wsss.runtime import setup\nsetup(None, 1, seed=0)\nimport sys\nprint('torch' in sys.modules)\n"


def start_code(script: Path) -> str:
    """The script's top-level imports (Snakemake provides `snakemake` itself), then setup as a job runs it."""
    body = ast.parse(script.read_text()).body
    return "\n".join(ast.unparse(node) for node in body if isinstance(node, (ast.Import, ast.ImportFrom))) + PROBE


def start(code: str) -> tuple[float, bool]:
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - began, out.split()[-1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for script in sorted(SCRIPTS.glob("*.py")):
        code = start_code(script)
        runs = [start(code) for _ in range(args.repeats)]
        rows.append((statistics.median(s for s, _ in runs), script.stem, runs[0][1]))
    print(f"step start-up, median of {args.repeats} (seconds; torch: whether the step loads it)")
    for seconds, step, torch_loaded in sorted(rows, reverse=True):
        print(f"{step:24s} {seconds:6.2f}  {'torch' if torch_loaded else ''}")


if __name__ == "__main__":
    main()
