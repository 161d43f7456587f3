#!/usr/bin/env bash
# Browser tests of the dashboard (/ui/): installs what they need (Debian's Chromium, the
# pinned playwright-core from ui-tests/package-lock.json), builds leasehold, and runs
# ui-tests/run.mjs, which starts `leasehold serve` on a scratch configuration and drives
# Chromium headless. Screenshots are written to docs/screenshots/ (SCREENSHOTS=0: not).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null && command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}"
fi

(cd ui-tests && npm ci --no-audit --no-fund)
mkdir -p ui-tests/.bin
go build -o ui-tests/.bin/leasehold ./cmd/leasehold
LEASEHOLD_BIN="$PWD/ui-tests/.bin/leasehold" node ui-tests/run.mjs
