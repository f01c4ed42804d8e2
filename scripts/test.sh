#!/usr/bin/env bash
# Install spoco-zoo (CPU torch pin first) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
python -m pytest -q -ra "$@"
