#!/usr/bin/env bash
# Installs what turn-monitor needs on a Debian machine with Node 20, then builds it.
# Idempotent and quick when nothing changed: apt only for missing packages, `npm ci` only when
# package-lock.json changed since the last install, `tsc` only when sources are newer than dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
# PostgreSQL 15: the tests' throwaway server for the fleet export (optional at run time).
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql)
# wrk: the HTTP load of `npm run bench` (credential_api), a C client light enough not to be the bottleneck.
if [ -n "${TURN_MONITOR_BENCH:-}" ]; then command -v wrk >/dev/null 2>&1 || missing+=(wrk); fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]} with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

stamp=node_modules/.turn-monitor-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci (better-sqlite3 may build from source: ~90 s)" >&2
  npm ci --no-audit --no-fund >&2
  cp package-lock.json "$stamp"
fi

if [ ! -f dist/.build-stamp ] || [ -n "$(find src tsconfig.json tsconfig.build.json package.json -newer dist/.build-stamp -print -quit)" ]; then
  echo "setup: building" >&2
  npm run --silent build >&2
  touch dist/.build-stamp
fi
