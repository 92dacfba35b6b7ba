"""Provider discovery at scale: ``providers list`` with 1, 250 and 500 installed provider plugins
(real distributions in a throwaway venv): ``python benchmarks/discovery.py [--quick]``."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from common import REPO, clean_env, median_time, row

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
    print("discovery at scale (median wall time; target: 500 providers < 3x one, linear growth)")
    runs = 5 if quick else 11
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
        py = str(venv / "bin" / "python")
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "-e", str(REPO), "-e", str(REPO / "providers" / "hibob")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        site = Path(
            subprocess.run(
                [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        env = clean_env()
        listing = [py, "-m", "connector_core", "providers", "list"]
        results: dict[int, float] = {}
        written = 0
        for count in (0, 250, 500):
            while written < count:
                _write_dist(site, written)
                written += 1
            subprocess.run(listing, env=env, check=True, stdout=subprocess.DEVNULL)  # warm the bytecode cache
            results[count] = median_time(listing, runs, env)
            row(
                f"providers list, {count + 1} providers",
                f"{results[count] * 1000:.1f} ms",
                f"{results[count] / results[0]:.2f}x one provider",
            )
        growth = (results[500] - results[0]) / max(results[250] - results[0], 1e-9)
        row("growth 1->500 over 1->250 (2.0 = linear)", f"{growth:.2f}")
        show_one = median_time([py, "-m", "connector_core", "providers", "show", "bench0123"], runs, env)
        show_hibob = median_time([py, "-m", "connector_core", "providers", "show", "hibob"], runs, env)
        row(
            "providers show bench0123, 501 installed",
            f"{show_one * 1000:.1f} ms",
            f"{show_one / results[0]:.2f}x 'providers list' with one",
        )
        row(
            "providers show hibob, 501 installed",
            f"{show_hibob * 1000:.1f} ms",
            f"{show_hibob / results[0]:.2f}x 'providers list' with one",
        )


if __name__ == "__main__":
    import sys

    bench("--quick" in sys.argv[1:])
