"""Measure connector-core's performance targets side by side and print figures and ratios.

    python benchmarks/run.py                 # every section (many minutes on 2 cores)
    python benchmarks/run.py --only cold store
    python benchmarks/run.py --quick         # about a minute: fewer repetitions, smaller sizes

Each section is a script of its own here (``benchmarks/<module>.py``, runnable alone) with a
``bench(quick)`` function; ``benchmarks/common.py`` holds what they share. Every figure is
printed with what bounds it: the yardstick measured beside it in the same run, or the target.

Nothing here is asserted; the test suite asserts structure (imports, statement counts,
refresh counts) only.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import shared_postgres  # noqa: E402 - from benchmarks/, on the path just above

#: Section name -> (module in benchmarks/, what it measures).
SECTIONS = {
    "cold": ("cold", "CLI cold start, paired run by run with the floor"),
    "discovery": ("discovery", "providers list with 1, 250 and 500 installed plugins"),
    "refresh": ("refresh", "refresh_all against a bare httpx loop, authlib and the server's capacity"),
    "store": ("store", "the SQLite store at 100,000 connections"),
    "listings": ("listings", "connections list, --json and the API's pages over 100,000 connections"),
    "requests": ("per_request", "per GET through connector.auth() and request(); connector request cold"),
    "pg": ("pg", "the PostgreSQL store, bulk refresh and many workers (a throwaway cluster)"),
    "service": ("service", "connector serve under 50 concurrent clients: sessions, listing, the proxy, webhooks"),
    "webhooks": ("webhooks", "recording events with the outbox, deliveries to a local receiver (SQLite, PostgreSQL)"),
    "keeper": ("keeper", "the keeper's refreshes per second and its lag from due to refreshed (SQLite, PostgreSQL)"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (about a minute)")
    args = parser.parse_args()
    print(f"connector-core benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    failed = []
    begun = time.perf_counter()
    with shared_postgres():  # one throwaway cluster for every section that needs one
        for name in args.only or list(SECTIONS):
            module, _ = SECTIONS[name]
            started = time.perf_counter()
            try:
                importlib.import_module(module).bench(args.quick)
            except Exception as exc:  # noqa: BLE001 - one broken section does not hide the others' figures
                failed.append(name)
                print(f"  {name} FAILED: {type(exc).__name__}: {exc}", flush=True)
            print(f"  ({name}: {time.perf_counter() - started:.0f} s)\n", flush=True)
    print(f"(all: {time.perf_counter() - begun:.0f} s{'; failed: ' + ', '.join(failed) if failed else ''})")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
