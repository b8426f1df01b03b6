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
# A hard bound on the whole run: a hung test must fail CI in minutes, never run out its clock.
# --test-force-exit ends a test file whose tests are done even if a handle is still open.
limit="${TEST_SUITE_TIMEOUT_SEC:-1500}"
set +e
timeout --kill-after=30 "$limit" node --import tsx --test --test-force-exit --test-reporter=spec \
  --test-concurrency="${TEST_CONCURRENCY:-3}" "${files[@]}"
rc=$?
set -e
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "test suite stopped: still running after ${limit} s (TEST_SUITE_TIMEOUT_SEC)" >&2
fi
exit "$rc"
