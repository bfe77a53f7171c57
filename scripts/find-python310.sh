#!/usr/bin/env bash
# Print the path of a working Python 3.10 (the Rasa engine needs it), or explain what is missing.
set -u
candidates=()
[ -n "${PYTHON310:-}" ] && candidates+=("$PYTHON310")
root="${PYENV_ROOT:-${HOME:-/root}/.pyenv}"
for p in "$root"/versions/3.10*/bin/python3.10 /root/.pyenv/versions/3.10*/bin/python3.10; do
  [ -x "$p" ] && candidates+=("$p")
done
command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
for p in /usr/bin/python3.10 /usr/local/bin/python3.10; do [ -x "$p" ] && candidates+=("$p"); done
for p in "${candidates[@]}"; do
  if "$p" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
    echo "$p"; exit 0
  fi
done
cat >&2 <<MSG
error: Python 3.10 not found. The Rasa 3.6 engine needs it (rasa==3.6.21 supports 3.8-3.10).
Looked for: \$PYTHON310, $root/versions/3.10*/bin/python3.10, python3.10 on PATH, /usr/bin/python3.10.
Install it, e.g. 'pyenv install 3.10' or your distribution's python3.10 and python3.10-venv,
or point PYTHON310 at an interpreter.
MSG
exit 1
