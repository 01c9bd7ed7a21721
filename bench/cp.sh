#!/usr/bin/env bash
# docker cp: arca vs Docker (Debian's dockerd), one run, the same docker CLI against both.
#
#   bench/cp.sh [--runs N] [--files N] [--file-kb KB] [--big-mb MB] [--no-build]
#
# Into and out of a running busybox container: a tree of --files small files of --file-kb
# KiB (per-file cost), and one file of --big-mb MiB (throughput); then the small tree out of
# a stopped container (arca mounts its overlay for the copy, Docker too). Copies out go to
# stdout as a tar (`cp CTR:PATH -`): unpacking on the client is the docker CLI's work, the
# same for both engines, and took 2 s of the tree's 2.1 s. Each case runs --runs times per
# engine (medians). Prints ms per copy and arca's speed-up (docker / arca).
# Everything started is stopped by PID on exit. Must run as root. See bench/README.md.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
files=2000
file_kb=4
big_mb=256
build=1

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --files) files="$2"; shift 2 ;;
        --file-kb) file_kb="$2"; shift 2 ;;
        --big-mb) big_mb="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in runs files file_kb big_mb; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "cp: --${v//_/-} must be a positive integer" >&2; exit 2; }
done

BENCH="cp"
# shellcheck source=bench/lib/engines.sh
source "$repo_root/bench/lib/engines.sh"
command -v python3 >/dev/null || die "python3 is missing"
require_docker
engines_init
build_arca "$build"

# The data, made once: a tree of small files and one big file.
src="$tmp/src"
mkdir -p "$src/tree"
python3 - "$src/tree" "$files" "$file_kb" <<'PY'
import os, sys
root, n, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, f"d{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(os.urandom(kb * 1024))
PY
head -c "$((big_mb * 1024 * 1024))" /dev/urandom >"$src/big"
results="$tmp/results.txt"
: >"$results"

now_ns() { date +%s%N; }
# timed ENGINE CASE CMD...: runs CMD --runs times, records each duration in ms.
timed() {
    local engine="$1" case="$2" i t0 t1
    shift 2
    for ((i = 0; i < runs; i++)); do
        rm -rf "$tmp/out" && mkdir -p "$tmp/out"
        sync
        t0=$(now_ns)
        "$@" >/dev/null
        t1=$(now_ns)
        echo "$engine $case $(((t1 - t0) / 1000000))" >>"$results"
    done
}

# bench_engine NAME CLIENT...: every case against one engine.
bench_engine() {
    local name="$1"
    shift
    local cli=("$@")
    "${cli[@]}" rm -f cpbench cpstopped >/dev/null 2>&1 || true
    "${cli[@]}" run -d --name cpbench busybox sleep 100000 >/dev/null
    timed "$name" "tree-in" "${cli[@]}" cp "$src/tree" cpbench:/tmp/
    timed "$name" "tree-out" "${cli[@]}" cp cpbench:/tmp/tree -
    timed "$name" "big-in" "${cli[@]}" cp "$src/big" cpbench:/tmp/
    timed "$name" "big-out" "${cli[@]}" cp cpbench:/tmp/big -
    # Check the copies once: the bench measures copies that are right.
    "${cli[@]}" cp cpbench:/tmp/tree "$tmp/out/check"
    diff -r "$src/tree" "$tmp/out/check" >/dev/null || die "$name: the tree came back different"
    "${cli[@]}" cp cpbench:/tmp/big - | tar -xOf - big | cmp -s - "$src/big" ||
        die "$name: the big file came back different"
    "${cli[@]}" create --name cpstopped busybox true >/dev/null
    "${cli[@]}" cp "$src/tree" cpstopped:/tmp/tree
    timed "$name" "tree-out-stopped" "${cli[@]}" cp cpstopped:/tmp/tree -
    rm -rf "$tmp/out/check"
    "${cli[@]}" cp cpstopped:/tmp/tree "$tmp/out/check"
    diff -r "$src/tree" "$tmp/out/check" >/dev/null || die "$name: the stopped container's tree came back different"
    "${cli[@]}" rm -f cpbench cpstopped >/dev/null
}

start_arcad
"${arca[@]}" load -i "$fixture" >&2
# The same docker CLI drives both engines.
bench_engine arca "$docker_cli" -H "unix://$arca_sock"
stop_pid arcad "$arcad_pid" 10
arcad_pid=""

start_containerd
start_dockerd
"${dk[@]}" load -i "$fixture" >&2
bench_engine docker "${dk[@]}"

python3 - "$results" "$files" "$file_kb" "$big_mb" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
files, kb, mb = sys.argv[2], sys.argv[3], sys.argv[4]
med = {}
for engine, case, ms in rows:
    med.setdefault((engine, case), []).append(int(ms))
labels = {
    "tree-in": f"{files} x {kb} KiB files into a running container",
    "tree-out": f"{files} x {kb} KiB files out of a running container (tar)",
    "big-in": f"one {mb} MiB file into a running container",
    "big-out": f"one {mb} MiB file out of a running container (tar)",
    "tree-out-stopped": f"{files} x {kb} KiB files out of a stopped container (tar)",
}
print(f"{'case':<58} {'arca ms':>9} {'docker ms':>10} {'speed-up':>9}")
for case, label in labels.items():
    a = statistics.median(med.get(("arca", case), [0]))
    d = statistics.median(med.get(("docker", case), [0]))
    ratio = f"{d / a:.2f}x" if a else "-"
    print(f"{label:<58} {a:>9.0f} {d:>10.0f} {ratio:>9}")
PY
