#!/usr/bin/env bash
# Lint with OpenMMLab's set: flake8, isort, yapf, codespell, with the settings of setup.cfg (the same
# checks as .pre-commit-config.yaml, run from the venv: no network needed).
#   bash tools/lint.sh          # check only; exit status 1 if any check finds something
#   bash tools/lint.sh --fix    # format everything in place (isort, then yapf); then rerun the check:
#                               # flake8 / codespell findings that formatting cannot fix are left
# Environment: MMDYT_LINT_PYTHON, the python that has the linters (default: the venv of tools/install.sh).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${MMDYT_LINT_PYTHON:-$(bash "$REPO/tools/install.sh" | tail -n 1)}"
PATHS=(mmdyt demo tools tests configs setup.py)

if [[ "${1:-}" == "--fix" ]]; then
  "$PY" -m isort "${PATHS[@]}" && "$PY" -m yapf -i -r -p "${PATHS[@]}"
  exit $?
fi

status=0
run() {
  local name="$1"; shift
  echo "== lint: $name"
  if ! "$@"; then
    echo "== lint: $name found problems"
    status=1
  fi
}
run flake8 "$PY" -m flake8 "${PATHS[@]}"
run isort "$PY" -m isort --check-only --diff "${PATHS[@]}"
yapf_check() {  # the diff can be long: its first 200 lines and the files
  local diff
  diff="$("$PY" -m yapf --diff -r -p "${PATHS[@]}")"
  [[ -z "$diff" ]] && return 0
  echo "$diff" | head -n 200
  echo "files yapf would change: $(echo "$diff" | grep -c '^+++ ')"
  return 1
}
run yapf yapf_check
run codespell "$(dirname "$PY")/codespell" mmdyt demo tools tests configs docs README.md
if [[ $status -ne 0 ]]; then
  echo "== lint: failed (formatting: bash tools/lint.sh --fix)"
fi
exit $status
