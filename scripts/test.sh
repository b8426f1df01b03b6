#!/usr/bin/env bash
# Runs the whole suite (or the test files given as arguments) with node's test runner.
# Tests start real turnserver, redis-server and ZooKeeper processes on loopback; most of their
# time is spent waiting, so a few files run in parallel even on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test -name '*.test.ts' | sort)
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "no test files found" >&2
  exit 1
fi
exec node --import tsx --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-3}" "${files[@]}"
