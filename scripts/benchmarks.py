#!/usr/bin/env python3
"""Runs logbrook's benchmarks and draws the plots of BENCHMARKS.md.

Every point is the median of RUNS runs of `logbrook bench ... --embedded --json`
(min and max kept too); results go to docs/bench/results.json and the plots to
docs/bench/*.png. Needs a release build (`cargo build --release`) and matplotlib.

    python3 scripts/benchmarks.py            # everything (about 6 minutes here)
    python3 scripts/benchmarks.py --quick    # fewer points and runs, to try it out
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "logbrook"
OUT = ROOT / "docs" / "bench"


def bench(kind: str, *args: str) -> dict:
    """One run: the JSON report of `logbrook bench KIND --embedded --json ARGS`."""
    cmd = [str(BIN), "bench", kind, "--embedded", "--json", *args]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def repeated(runs: int, kind: str, *args: str) -> dict:
    """Median, min and max of records/s (and of latency p50/p99) over `runs` runs,
    plus the median run: by records/s, or by p50 latency for `e2e`, whose rate is
    fixed."""
    reports = [bench(kind, *args) for _ in range(runs)]
    rates = [r["records_per_sec"] for r in reports]
    by = (lambda r: r["latency_us"]["p50"]) if kind == "e2e" else (lambda r: r["records_per_sec"])
    median_run = sorted(reports, key=by)[len(reports) // 2]
    return {
        "kind": kind,
        "args": list(args),
        **spread(rates),
        "p50_us": spread([r["latency_us"]["p50"] for r in reports]),
        "p99_us": spread([r["latency_us"]["p99"] for r in reports]),
        "mb_per_sec": median_run["mb_per_sec"],
        "latency_us": median_run["latency_us"],
    }


def records_for(size: int, budget_bytes: int, cap: int) -> int:
    return max(1000, min(cap, budget_bytes // max(size, 1)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer points and runs")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-plots", action="store_true")
    opts = parser.parse_args()
    runs = 2 if opts.quick else opts.runs
    n = 200_000 if opts.quick else 2_000_000
    if not BIN.exists():
        print(f"missing {BIN}: run cargo build --release first", file=sys.stderr)
        return 1
    results: dict = {"runs": runs}

    print("headline (100 B, 1 partition, 1 broker, fsync never)", flush=True)
    # e2e first: run right after the fsync runs it measured p50 2.4 ms, against
    # 1.0-1.25 ms on its own (2026-12-03).
    results["headline"] = {
        "e2e_10k": repeated(runs, "e2e", "--records", "20000", "--rate", "10000", "--linger-ms", "0"),
        "produce": repeated(runs, "produce", "--records", str(n)),
        "consume": repeated(runs, "consume", "--records", str(n)),
        "produce_fsync_always": repeated(runs, "produce", "--records", str(n), "--fsync", "always"),
    }

    sizes = [10, 100, 1000, 10_000, 100_000] if opts.quick else [10, 100, 1000, 10_000, 100_000]
    results["record_size"] = []
    for size in sizes:
        print(f"record size {size}", flush=True)
        count = records_for(size, 200 << 20 if not opts.quick else 40 << 20, n)
        args = ("--records", str(count), "--record-size", str(size))
        results["record_size"].append(
            {"size": size, "produce": repeated(runs, "produce", *args), "consume": repeated(runs, "consume", *args)}
        )

    parts = [1, 4, 16, 64] if opts.quick else [1, 2, 4, 8, 16, 32, 64]
    results["partitions"] = []
    for p in parts:
        print(f"partitions {p}", flush=True)
        args = ("--records", str(n), "--partitions", str(p))
        results["partitions"].append(
            {"partitions": p, "produce": repeated(runs, "produce", *args), "consume": repeated(runs, "consume", *args)}
        )

    results["brokers"] = []
    for b in [1, 2, 3]:
        print(f"brokers {b}", flush=True)
        args = ("--records", str(n), "--brokers", str(b), "--partitions", "3")
        results["brokers"].append(
            {"brokers": b, "produce": repeated(runs, "produce", *args), "consume": repeated(runs, "consume", *args)}
        )

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT / 'results.json'}")
    if not opts.no_plots:
        plot(results)
    return 0


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def sweep(key: str, xkey: str, xlabel: str, name: str, logx: bool) -> None:
        points = results[key]
        xs = [p[xkey] for p in points]
        fig, ax = plt.subplots(figsize=(7, 4))
        for kind, color in (("produce", "tab:blue"), ("consume", "tab:orange")):
            med = [p[kind]["median"] / 1e6 for p in points]
            lo = [(p[kind]["median"] - p[kind]["min"]) / 1e6 for p in points]
            hi = [(p[kind]["max"] - p[kind]["median"]) / 1e6 for p in points]
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label=kind, color=color)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("million records/s (median, min-max)")
        ax.set_title(f"logbrook throughput vs {xlabel}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(OUT / name, dpi=110)
        plt.close(fig)

    sweep("record_size", "size", "record size (bytes)", "throughput_vs_record_size.png", True)
    sweep("partitions", "partitions", "partitions", "throughput_vs_partitions.png", True)
    sweep("brokers", "brokers", "brokers", "throughput_vs_brokers.png", False)

    curve = results["headline"]["e2e_10k"]["latency_us"]["curve"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([100 - p for p, _ in curve], [v / 1000 for _, v in curve], marker="o")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks([50, 10, 1, 0.1, 0.01])
    ax.set_xticklabels(["p50", "p90", "p99", "p99.9", "p99.99"])
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("end-to-end latency at 10,000 records/s (100 B, linger 0)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "e2e_latency.png", dpi=110)
    plt.close(fig)
    print(f"wrote plots to {OUT}")


if __name__ == "__main__":
    sys.exit(main())
