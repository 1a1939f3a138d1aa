#!/usr/bin/env bash
# One idempotent set-up for mmdyt: a virtual environment with torch, mmcv (with ops), the three
# OpenMMLab hosts, the test tools and mmdyt itself (editable). Fast when everything is already there.
#
#   bash tools/install.sh            # prints the venv's python on its last line
#
# Environment:
#   MMDYT_VENV    where the venv lives            (default: ~/.venvs/mmdyt)
#   MMDYT_PYTHON  interpreter that creates it     (default: python3.11, else python3)
#   MMDYT_WHEELS  folder with a prebuilt mmcv-2.0.1 wheel for this torch (default: ../shared/wheels
#                 beside the repo, if present). Without one, mmcv is built from source (~1 h on 2 cores);
#                 pip's wheel cache keeps the result for later installs on the same machine.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMDYT_VENV:-$HOME/.venvs/mmdyt}"
BASE_PY="${MMDYT_PYTHON:-$(command -v python3.11 || command -v python3)}"
WHEELS="${MMDYT_WHEELS:-$REPO/../shared/wheels}"
PY="$VENV/bin/python"
MMCV_VERSION=2.0.1
log() { echo "[mmdyt install] $*" >&2; }

stamp_of() {
  cat "$REPO"/requirements/*.txt "$REPO/tools/install.sh" "$REPO/setup.py" | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$VENV/.mmdyt-install-stamp"
STAMP="$(stamp_of)"

if [[ ! -x "$PY" ]]; then
  log "creating venv $VENV with $BASE_PY"
  "$BASE_PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "mmdyt pins (torch 2.14.1, mmcv 2.0.1 wheel) are for Python 3.11, got %s" % sys.version' 
  "$BASE_PY" -m venv "$VENV"
fi

if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP" ]]; then
  # Everything pinned is in place; only make sure the editable mmdyt points at this checkout.
  # From / so that a checkout in the current directory cannot shadow the install.
  where="$(cd / && "$PY" -c 'import mmdyt, os; print(os.path.dirname(os.path.dirname(os.path.abspath(mmdyt.__file__))))' 2>/dev/null || true)"
  if [[ "$where" != "$REPO" ]]; then
    log "re-linking editable mmdyt to $REPO"
    "$PY" -m pip install -q --no-deps --no-build-isolation -e "$REPO"
  fi
  log "up to date ($VENV)"
  echo "$PY"
  exit 0
fi

PIP=("$PY" -m pip install --disable-pip-version-check)
log "build requirements (torch, setuptools<82, ...)"
"${PIP[@]}" -q -r "$REPO/requirements/build.txt" -c "$REPO/requirements/constraints.txt"

have_mmcv_ops() {
  "$PY" - <<PYEOF 2>/dev/null
import importlib.metadata as md, importlib.util as u
assert md.version('mmcv') == '$MMCV_VERSION'
assert u.find_spec('mmcv._ext') is not None
PYEOF
}
if have_mmcv_ops; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  wheel="$(ls "$WHEELS"/mmcv-$MMCV_VERSION-cp311-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -n "$wheel" ]]; then
    log "installing prebuilt $wheel"
    "${PIP[@]}" -q --no-deps "$wheel"
  else
    log "building mmcv $MMCV_VERSION with ops from source (about an hour on 2 cores)"
    tmp="$(mktemp -d)"
    # torch 2.14's headers need C++20 while mmcv 2.0.1's setup.py forces -std=c++14: the last -std wins.
    printf '#!/bin/sh\nexec c++ "$@" -std=gnu++20 -g0 -O2\n' > "$tmp/cxx20"
    chmod +x "$tmp/cxx20"
    MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" CXX="$tmp/cxx20" \
      "${PIP[@]}" --no-deps --no-build-isolation "mmcv==$MMCV_VERSION"
    rm -rf "$tmp"
  fi
fi

log "OpenMMLab hosts, runtime, optional (demo, video decoding), test and docs requirements (tested pins: requirements/constraints.txt)"
"${PIP[@]}" -q -r "$REPO/requirements/mminstall.txt" -r "$REPO/requirements/runtime.txt" \
  -r "$REPO/requirements/optional.txt" -r "$REPO/requirements/tests.txt" -r "$REPO/requirements/docs.txt" \
  -c "$REPO/requirements/constraints.txt"
log "mmdyt (editable)"
"${PIP[@]}" -q --no-deps --no-build-isolation -e "$REPO"
"$PY" -c 'import mmdyt, mmcv.ops' >/dev/null
echo "$STAMP" > "$STAMP_FILE"
log "done ($VENV)"
echo "$PY"
