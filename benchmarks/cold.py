"""Cold start of CLI commands, as whole processes, paired run by run with the floor (importing
pluggy and attrs and reading the entry points): ``python benchmarks/cold.py [--quick]``.

Each run times the floor and every command back to back, and each command's figure is the
median over runs of its time over the floor's *in the same run*, so noise that slows one
run slows both sides of its ratio.
"""

from __future__ import annotations

import statistics
import sys

from common import clean_env, heading, paired, paired_ratio, row

FLOOR = "import pluggy, attrs, importlib.metadata as m; m.entry_points(group='connector_core')"


def commands() -> dict[str, list[str]]:
    py = sys.executable
    cli = [py, "-m", "connector_core"]
    return {
        "floor": [py, "-c", FLOOR],
        "connector providers list": [*cli, "providers", "list"],
        "connector scopes hibob --check ...": [*cli, "scopes", "hibob", "--check", "employee_data:read", "tasks:write"],
        "connector --help": [*cli, "--help"],
    }


def bench(quick: bool) -> None:
    runs = 7 if quick else 21
    heading(f"cold start ({runs} runs, paired run by run; target: at most 1.3x the floor)")
    samples = paired(commands(), runs, clean_env())
    for label, times in samples.items():
        bound = (
            "the floor: import pluggy + attrs, read entry points"
            if label == "floor"
            else (f"{paired_ratio(samples, label, 'floor'):.2f}x floor (median of per-run ratios)")
        )
        row(label, f"{statistics.median(times) * 1000:.1f} ms", bound)


if __name__ == "__main__":
    bench("--quick" in sys.argv[1:])
