#!/usr/bin/env bash
# Makes a Python virtualenv with pystorm (the multi-lang tests' and examples' library, and
# msgpack for its MessagePack serializer) in
# ${SQUALL_CACHE:-~/.cache/squall}/pyenv and prints SQUALL_PYTHON=<its python>.
# Usage: eval "$(bash scripts/python-up.sh)"   (then SQUALL_PYTHON is set)
set -euo pipefail
PYSTORM_VERSION=3.1.4
MSGPACK_VERSION=1.2.4
cache=${SQUALL_CACHE:-$HOME/.cache/squall}
venv=$cache/pyenv
python=${PYTHON:-python3}
if ! "$venv/bin/python" -c "import msgpack, pystorm, sys; sys.exit(pystorm.__version__ != '$PYSTORM_VERSION' or msgpack.version != tuple(map(int, '$MSGPACK_VERSION'.split('.'))))" 2>/dev/null; then
  mkdir -p "$cache"
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pystorm==$PYSTORM_VERSION" "msgpack==$MSGPACK_VERSION" >&2
fi
echo "export SQUALL_PYTHON=$venv/bin/python"
