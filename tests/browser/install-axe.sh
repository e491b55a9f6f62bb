#!/usr/bin/env bash
# Installs axe-core (the accessibility checker the browser tests inject into the page) from the
# npm registry into ~/.cache/crucible/npm, once; prints the path of axe.min.js.
#   usage: tests/browser/install-axe.sh
set -euo pipefail
AXE_VERSION=4.14.1
prefix="${CRUCIBLE_CACHE:-$HOME/.cache/crucible}/npm/axe-core-$AXE_VERSION"
script="$prefix/node_modules/axe-core/axe.min.js"
if [ ! -s "$script" ]; then
  command -v npm >/dev/null || { echo "install-axe: npm is needed (Node.js)" >&2; exit 1; }
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "axe-core@$AXE_VERSION" >&2
fi
echo "$script"
