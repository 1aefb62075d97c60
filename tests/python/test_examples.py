"""The Python examples, run as CI runs them: ``python examples/python/NAME.py``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def run_example(name: str, *args: str) -> str:
    script = EXAMPLES / name
    assert script.is_file(), f"missing example {script}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, (
        f"{name} exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    assert took < 30, f"{name} took {took:.1f}s"
    return done.stdout


def test_quickstart_example_with_its_own_cluster():
    out = run_example("quickstart.py")
    assert "received 5 messages" in out, out
    assert sum(line.startswith("partition ") for line in out.splitlines()) == 5, out


def test_quickstart_example_against_a_running_cluster(logbrook_cluster):
    # Twice: the second run finds the topic and the group from the first.
    for _ in range(2):
        out = run_example("quickstart.py", logbrook_cluster.leader_addr)
        assert f"leader at {logbrook_cluster.leader_addr}" in out, out
        assert "received 5 messages" in out, out


@pytest.mark.parametrize("external", [False, True], ids=["own-cluster", "running-cluster"])
def test_consumer_group_example(external, request):
    args = []
    if external:
        args.append(request.getfixturevalue("logbrook_cluster").leader_addr)
    out = run_example("consumer_group.py", *args)
    assert "each exactly once" in out, out
    for worker in ("worker-0", "worker-1"):
        assert any(line.startswith(f"{worker}: ") and "records from partitions" in line
                   for line in out.splitlines()), out
