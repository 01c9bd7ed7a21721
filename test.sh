#!/usr/bin/env bash
# The project's test command. Run as root: the tests create namespaces, mounts, cgroups and
# containers. Stops at the first failing step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step=""
started=$SECONDS
section() {
    step="$1"
    printf '\n==== [%s] %s  (t=%ds)\n' "$(date +%H:%M:%S)" "$step" "$((SECONDS - started))"
}
on_exit() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then printf '\n==== FAILED: %s (exit %d)\n' "${step:-setup}" "$rc" >&2; fi
    return "$rc"
}
trap on_exit EXIT

if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: run as root (the tests are privileged)" >&2
    exit 1
fi

section "format: cargo fmt --all -- --check"
cargo fmt --all -- --check

section "lint: cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "fixtures: fixtures/build-busybox.sh"
fixtures/build-busybox.sh

section "tests: cargo test --workspace --locked"
cargo test --workspace --locked

step=""
printf '\n==== all passed in %ds\n' "$((SECONDS - started))"
