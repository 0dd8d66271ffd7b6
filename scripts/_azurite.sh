# Sourced by scripts/test: install Azurite (the Azure Storage emulator, npm) into the
# git-ignored .cache/azurite once, and point the tests at its azurite-blob binary.
# Needs Node.js and npm; the blob-store tests fail (never skip) without it.
set -euo pipefail
azurite_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/azurite"
if [ ! -x "$azurite_root/node_modules/.bin/azurite-blob" ]; then
  npm install --silent --no-audit --no-fund --prefix "$azurite_root" azurite@3 >&2
fi
export AZURITE_BLOB_BIN="$azurite_root/node_modules/.bin/azurite-blob"
