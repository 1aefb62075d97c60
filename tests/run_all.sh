#!/usr/bin/env bash
# Runs every test of logbrook: formatting and lint gates, the Rust unit and
# integration tests (real clusters on ephemeral loopback ports), the doc tests, the
# examples, and the Python tests when the Python package exists.
# This is the README's test command; .ci/run calls it on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (unit, integration, examples build)"
cargo test --all-targets --locked

step "cargo test --doc"
cargo test --doc --locked

step "examples/quickstart.rs"
cargo run --quiet --locked --example quickstart

if [ -f python/logbrook/__init__.py ] && [ -d tests/python ]; then
  step "Python package and pytest"
  venv="${LOGBROOK_VENV:-target/venv}"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip maturin pytest pytest-timeout
  "$venv/bin/python" -m pip install --quiet -e .
  "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
else
  step "no Python package yet: skipping pytest"
fi
