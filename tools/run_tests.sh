#!/usr/bin/env bash
# The test command: make sure the environment is installed (idempotent, seconds when it is),
# then run the whole test suite in one pytest process with the venv's python.
#   bash tools/run_tests.sh [pytest args...]      e.g. bash tools/run_tests.sh -x -k resume
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$REPO/tools/install.sh" | tail -n 1)"
cd "$REPO"
exec "$PY" -m pytest tests/ "$@"
