#!/usr/bin/env bash
# The whole test run, as CI does it: prepare the real environment, then `deno task test`.
# Extra arguments go to `deno test`, e.g. `bash scripts/test.sh --filter rollback`.
# The last line is always a one-line summary with the exit code.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
if ! bash scripts/test-env.sh; then
  echo "test.sh: FAILED: scripts/test-env.sh could not prepare the test environment (tests not run)"
  exit 1
fi
env_seconds=$((SECONDS - start))

# No colour codes in CI logs when there is no terminal.
[[ -t 1 ]] || export NO_COLOR=1
deno task test "$@"
code=$?

result=passed
((code == 0)) || result=FAILED
echo "test.sh: tests $result (exit $code); environment ${env_seconds}s, tests $((SECONDS - start - env_seconds))s"
exit "$code"
