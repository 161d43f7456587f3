#!/usr/bin/env bash
# Every test of the repository, as CI runs them:
#   - the server module (go test -race ./...): unit, store conformance, end-to-end over real
#     HTTP and real processes; the PostgreSQL store suite too when LEASEHOLD_TEST_POSTGRES
#     names a server;
#   - the build and the SQLite store's tests again with CGO_ENABLED=0, which uses the pure-Go driver
#     (ncruces/go-sqlite3) instead of mattn/go-sqlite3 (README, "Building without cgo");
#     without cgo there is no race detector;
#   - the Go client module (client/, a module of its own, so ./... above does not enter it),
#     against a real server binary it builds;
#   - a short pass of every fuzz target (scripts/fuzz-smoke.sh), when present;
#   - the dashboard in a real browser (scripts/ui-test.sh), when Debian's Chromium is
#     installed (apt-get install chromium); skipped, with a note, otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

go test -race -count=1 -timeout 15m ./...
CGO_ENABLED=0 go build ./...
CGO_ENABLED=0 go test -count=1 -timeout 5m ./internal/store/sqlite/...
(cd client && go test -race -count=1 -timeout 10m ./...)
if [ -x scripts/fuzz-smoke.sh ]; then
  scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-5}"
fi
if [ -x /usr/bin/chromium ]; then
  SCREENSHOTS=0 scripts/ui-test.sh
else
  echo "test.sh: browser tests skipped: no /usr/bin/chromium (apt-get install chromium)"
fi
