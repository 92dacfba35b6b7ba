"""Provider discovery at scale: ``providers list`` with 1, 251 and 501 installed provider plugins:
``python benchmarks/discovery.py [--quick]``.

The plugins are real distributions (a dist-info with an entry point, and a module) in two
folders of their own, put on the path with ``PYTHONPATH``: nothing is installed in the running
environment, and the commands with 1, 251 and 501 providers are timed paired run by run
(``common.paired``), each figure the median over runs of its ratio to the one-provider run.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

from common import clean_env, heading, paired, paired_ratio, row

PROVIDER_MODULE = textwrap.dedent(
    """
    from connector_core import hookimpl, Provider, HttpBasicAuth, CredentialField, Environment

    KEY = {key!r}

    @hookimpl
    def connector_core_register_providers(register):
        register.add(Provider(KEY, {name!r}, categories=["bench"]))

    @hookimpl
    def connector_core_auth_types(provider_key):
        return [HttpBasicAuth("basic", "Basic", "user", "password")] if provider_key == KEY else None

    @hookimpl
    def connector_core_credential_fields(provider_key):
        if provider_key == KEY:
            return [CredentialField("user", "User", "basic", help="u"),
                    CredentialField("password", "Password", "basic", kind="secret", help="p")]
        return None

    @hookimpl
    def connector_core_environments(provider_key):
        if provider_key == KEY:
            return [Environment("prod", "Production", "production", "https://api.example.com")]
        return None
    """
)


def _write_dist(site: Path, index: int) -> None:
    key = f"bench{index:04d}"
    dist = site / f"connector_{key}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: connector-{key}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[connector_core]\n{key} = connector_{key}\n")
    (dist / "RECORD").write_text("")
    (site / f"connector_{key}.py").write_text(PROVIDER_MODULE.format(key=key, name=f"Bench {index}"))


def bench(quick: bool) -> None:
    runs = 5 if quick else 11
    heading(f"discovery at scale ({runs} runs, paired run by run; target: 501 providers < 3x one, linear growth)")
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        none, first, second = (Path(tmp) / name for name in ("none", "first", "second"))
        for folder in (none, first, second):
            folder.mkdir()
        for index in range(500):
            _write_dist(first if index < 250 else second, index)
        env = clean_env()
        envs = {
            "1": {**env, "PYTHONPATH": str(none)},  # the same number of path entries, and nothing in it
            "251": {**env, "PYTHONPATH": str(first)},
            "501": {**env, "PYTHONPATH": f"{first}:{second}"},
        }
        cli = [sys.executable, "-m", "connector_core", "providers"]
        commands = {"1": [*cli, "list"], "251": [*cli, "list"], "501": [*cli, "list"]}
        commands |= {"show bench0123": [*cli, "show", "bench0123"], "show hibob": [*cli, "show", "hibob"]}
        envs |= {"show bench0123": envs["501"], "show hibob": envs["501"]}
        samples = paired(commands, runs, envs=envs)
        for count in ("1", "251", "501"):
            row(
                f"providers list, {count} providers",
                f"{statistics.median(samples[count]) * 1000:.1f} ms",
                "the yardstick" if count == "1" else f"{paired_ratio(samples, count, '1'):.2f}x one provider",
            )
        growth = statistics.median(
            (c - a) / max(b - a, 1e-9) for a, b, c in zip(samples["1"], samples["251"], samples["501"], strict=True)
        )
        row("growth 1->501 over 1->251 (2.0 = linear)", f"{growth:.2f}", "median per run; target: about 2 or less")
        for label in ("show bench0123", "show hibob"):
            row(
                f"providers {label}, 501 installed",
                f"{statistics.median(samples[label]) * 1000:.1f} ms",
                f"{paired_ratio(samples, label, '1'):.2f}x 'providers list' with one",
            )


if __name__ == "__main__":
    bench("--quick" in sys.argv[1:])
