#!/usr/bin/env bash
# Builds a Python venv for a test peer, once: python-venv.sh DIR REQUIREMENT...
# Idempotent and safe to run concurrently (flock); a finished venv carries a
# marker with its requirements, so a changed pin rebuilds it.
set -euo pipefail
dir=$1
shift
want="$*"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ -f "$dir/.akihabara-ready" ] && [ "$(cat "$dir/.akihabara-ready")" = "$want" ]; then
  exit 0
fi
rm -rf "$dir"
"${PYTHON:-python3}" -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
echo "$want" > "$dir/.akihabara-ready"
