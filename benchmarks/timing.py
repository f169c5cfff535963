"""Timing helper shared by the benchmark scripts (run as `python benchmarks/<script>.py`, which puts this
folder on sys.path)."""

import statistics
import time


def interleaved_medians(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin so a load change on a shared machine hits all alike."""
    for function in functions.values():
        function()  # warm-up: first calls allocate
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
