"""The Python benchmark tool runs each kind end to end (small counts: a check that
it works and reports what it moved, not a timing)."""

from __future__ import annotations

import json

import pytest

from logbrook import bench


@pytest.mark.parametrize("kind", ["produce", "produce-batch", "consume"])
def test_bench_reports_every_record_it_moved(kind, leader, capsys):
    assert bench.main([kind, "--records", "2500", "--record-size", "16", "--chunk", "1000", "--leader", leader, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == f"python-{kind}"
    assert report["records"] == 2500 and report["record_size"] == 16
    assert report["seconds"] > 0 and report["records_per_sec"] > 0


def test_bench_starts_its_own_cluster(capsys):
    assert bench.main(["produce", "--records", "100"]) == 0
    assert "python produce: 100 records of 100 B" in capsys.readouterr().out
