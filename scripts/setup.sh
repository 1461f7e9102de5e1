# Shared by scripts/up and scripts/test: a virtual environment with the project installed.
# torch is pinned to 2.13.0 in pyproject.toml: an open range would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The example task plugin (docs/plugins.md) is installed too, so that CI exercises it.
PLUGIN=examples/observatory-plugin-example
stamp=.venv/.installed-$(cat pyproject.toml $PLUGIN/pyproject.toml | sha1sum | cut -c1-12)-${1:-run}
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${2:-}"
  .venv/bin/python -m pip install -q --no-deps -e "$PLUGIN"
  touch "$stamp"
fi
