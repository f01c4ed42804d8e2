# Sourced by the scripts: use the active virtualenv, else create/use ./.venv,
# and install spoco-zoo with the CPU torch pin first (a bare `torch` would pull CUDA), with the
# napari extra (the plugin's widget tests run in a real viewer).
set -euo pipefail
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
# SPOCO_EXTRAS: the extras to install (the tests need the napari extra; the quickstart does not)
python -m pip install -q -e ".[${SPOCO_EXTRAS:-test,napari}]"
