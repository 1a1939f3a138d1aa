#!/usr/bin/env bash
# The main job, offline: set up (idempotent), then adapt a frozen pre-trained
# ViT to real handwritten digits with DyT and compare it with the dense model.
#   bash tools/demo.sh [tools/demo.py options, e.g. --work-dir work_dirs/demo]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$REPO/tools/install.sh" | tail -n 1)"
cd "$REPO"
exec "$PY" tools/demo.py "$@"
