"""The README's run command, as a new user types it: the service comes up and serves its docs."""

import os
import pathlib
import subprocess

from conftest import ROOT, Server


def test_readme_run_command_serves_healthz_and_docs(tmp_path):
    s = Server(tmp_path / "data", env={"RUN_PROFILE": "debug"})
    # scripts/run builds (a no-op: scripts/test has built the debug binary, which RUN_PROFILE
    # picks instead of a second, optimised build of the tree) and execs `sipx serve` with our
    # arguments; Server adds the data dir, JSON logs and a free port.
    s.start_command = [str(ROOT / "scripts" / "run")]
    s.start(timeout=900)
    try:
        import requests
        assert requests.get(s.url("/healthz"), timeout=5).status_code == 200
        docs = requests.get(s.url("/docs/"), timeout=5)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
    finally:
        s.stop()
