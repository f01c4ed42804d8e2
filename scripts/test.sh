#!/usr/bin/env bash
# Install spoco-zoo (CPU torch pin first), then lint, format check, type check and the test suite
# (tests/ and the >>> examples in spoco_zoo's docstrings). Any failure fails the script.
# Arguments are passed to pytest, e.g. `bash scripts/test.sh -x tests/test_export.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy
echo "== pytest" && python -m pytest -q -ra "$@"
