#!/usr/bin/env bash
# The whole test run, as CI does it: prepare the real environment, then `deno task test`.
# Extra arguments go to `deno test`, e.g. `bash scripts/test.sh --filter rollback` or
# `--ignore=test/e2e/`. (A path does not narrow the run: the task already names test/.)
# Env: HYPERBOT_TEST_TIMEOUT  seconds before a run without a terminal is stopped (default 900)
#      HYPERBOT_TEST_RESTART_DOCKER  1 (default here): the test that restarts the Docker daemon
#                                    runs too; 0 skips it (a machine whose daemon is shared).
# The last line is always a one-line summary with the exit code and, when a test was skipped
# (ignored), how many and which.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Every test runs unless the caller opts out; `deno task test` alone keeps the restart opt-in.
export HYPERBOT_TEST_RESTART_DOCKER="${HYPERBOT_TEST_RESTART_DOCKER:-1}"

timeout_s="${HYPERBOT_TEST_TIMEOUT:-900}"
start=$SECONDS
if ! bash scripts/test-env.sh; then
  echo "test.sh: FAILED: scripts/test-env.sh could not prepare the test environment (tests not run)"
  exit 1
fi
env_s=$((SECONDS - start))

output="$(mktemp)"
if [[ -t 0 && -t 1 ]]; then
  # At a terminal, Ctrl-C must reach deno, so no timeout (it would run deno in its own group).
  deno task test "$@" 2>&1 | tee "$output"
  code=${PIPESTATUS[0]}
else
  # In CI a hung test must not hang the job. timeout runs deno in a process group of its own
  # (its pid); whatever is left in that group afterwards (a CLI under test that outlived its
  # test) is killed too, so the job ends and leaves no process behind.
  export NO_COLOR=1
  timeout --kill-after=30 "$timeout_s" deno task test "$@" > >(tee "$output") 2>&1 &
  group=$!
  trap 'kill -TERM -- "-$group" 2>/dev/null' INT TERM
  wait "$group"
  code=$?
  trap - INT TERM
  if ((code == 124 || code == 137)); then
    echo "test.sh: deno task test did not finish within ${timeout_s}s and was stopped" \
      "(set HYPERBOT_TEST_TIMEOUT to change the limit)"
  fi
  if kill -0 -- "-$group" 2>/dev/null; then
    echo "test.sh: killing the processes the tests left running (process group $group)"
    kill -KILL -- "-$group" 2>/dev/null
  fi
  sleep 0.2 # let tee write the last lines
  # A filter that matches nothing must not look like a green build.
  if ((code == 0)) && grep -qE '^ok \| 0 passed' "$output"; then
    echo "test.sh: no test ran (check the --filter / paths)"
    code=1
  fi
fi

# A skipped test must show in the one line people read: deno marks it "... ignored".
skipped=""
ignored="$(sed 's/\x1b\[[0-9;]*m//g' "$output" | grep -E ' \.\.\. ignored' |
  sed -E 's/ \.\.\. ignored.*$//' | sort -u)"
if [[ -n "$ignored" ]]; then
  n="$(printf '%s\n' "$ignored" | wc -l)"
  skipped="; SKIPPED ${n}: $(printf '%s\n' "$ignored" | paste -sd '|' | sed 's/|/; /g')"
fi
rm -f "$output"

result=passed
((code == 0)) || result=FAILED
echo "test.sh: tests $result (exit $code)${skipped}; environment ${env_s}s," \
  "tests $((SECONDS - start - env_s))s"
exit "$code"
