#!/usr/bin/env bash
# Make .venv/ with the pinned Python tools of requirements.txt. Reused as long as requirements.txt
# and the Python interpreter are unchanged (stamp file .venv/.kubeha-stamp).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
stamp=.venv/.kubeha-stamp
want="$(sha256sum requirements.txt | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [[ -x .venv/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    echo "venv: .venv up to date"
    exit 0
fi
start=$SECONDS
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip check
echo "$want" >"$stamp"
echo "venv: installed requirements.txt into .venv in $((SECONDS - start)) s"
