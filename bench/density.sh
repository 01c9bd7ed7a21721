#!/usr/bin/env bash
# Container density: arca vs Docker (Debian's dockerd + containerd + runc), one run.
#
#   bench/density.sh [--count N] [--parallel P] [--only arca,docker] [--no-build] [--strict]
#
# For each engine, in turn: N detached `sleep` containers started one after another (total
# time), the memory of each container's shim (RSS and PSS from smaps_rollup), the daemon's
# RSS idle and with N running, the daemon's restart time with N running (until `ps` lists
# them all again; dockerd runs with live-restore so its containers survive, as arca's do),
# removal of all N, then N started P at a time. Everything runs under one temp dir and is
# stopped by PID on exit (see bench/README.md). Must run as root.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
count=50
parallel=4
only="arca,docker"
build=1
strict=0

usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --parallel) parallel="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --strict) strict=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
BENCH=density
DOCKERD_CONFIG='{"live-restore": true}'
# shellcheck source=bench/lib/engines.sh
source "$repo_root/bench/lib/engines.sh"

[[ "$count" =~ ^[0-9]+$ && "$count" -ge 1 ]] || die "--count must be a positive integer"
[[ "$parallel" =~ ^[0-9]+$ && "$parallel" -ge 1 ]] || die "--parallel must be a positive integer"
command -v python3 >/dev/null || die "python3 is missing"
want docker && require_docker
engines_init
results="$tmp/results.txt"
: >"$results"
record() { echo "$1 $2 $3" >>"$results"; } # engine metric value

# shim_pids ENGINE: the per-container monitor processes of our private engine.
shim_pids() {
    local pid exe
    case "$1" in
        arca)
            for pid in $(pgrep -x arca-shim || true); do
                exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
                # Ours: only this bench runs target/release's shim (tests use target/debug).
                [[ "$exe" == "$rel/arca-shim" ]] && echo "$pid"
            done ;;
        docker)
            for pid in $(pgrep -f containerd-shim || true); do
                grep -qsF -- "$tmp" "/proc/$pid/cmdline" && echo "$pid"
            done ;;
    esac
}

# rm_all CLIENT...: removes every container of that engine.
rm_all() {
    local ids
    mapfile -t ids < <("$@" ps -aq)
    [[ ${#ids[@]} -eq 0 ]] || "$@" rm -f "${ids[@]}" >/dev/null
}

# measure ENGINE CLIENT...: the whole sequence for one engine.
measure() {
    local engine="$1" daemon_pid t0 t1 n pids rss pss p i
    shift
    local cli=("$@")
    local run=("${cli[@]}" run -d --network none busybox sleep 3600)

    sleep 2
    daemon_pid="$arcad_pid"; [[ "$engine" == docker ]] && daemon_pid="$dockerd_pid"
    record "$engine" daemon_idle_rss_kb "$(rss_kb "$daemon_pid")"
    [[ "$engine" == docker ]] && record docker containerd_idle_rss_kb "$(rss_kb "$containerd_pid")"

    log "$engine: $count containers, one after another"
    t0=$(now_ms)
    for ((i = 0; i < count; i++)); do "${run[@]}" >/dev/null; done
    t1=$(now_ms)
    record "$engine" sequential_ms $((t1 - t0))
    n=$("${cli[@]}" ps -q | wc -l)
    [[ "$n" -eq "$count" ]] || die "$engine: $n of $count containers running"

    sleep 2 # let the shims settle (arca's trims its startup memory once its container runs)
    mapfile -t pids < <(shim_pids "$engine")
    [[ ${#pids[@]} -eq "$count" ]] || die "$engine: found ${#pids[@]} shims for $count containers"
    rss=0 pss=0
    for p in "${pids[@]}"; do
        rss=$((rss + $(rss_kb "$p")))
        pss=$((pss + $(pss_kb "$p")))
    done
    record "$engine" shim_rss_kb $((rss / count))
    record "$engine" shim_pss_kb $((pss / count))
    record "$engine" daemon_busy_rss_kb "$(rss_kb "$daemon_pid")"
    [[ "$engine" == docker ]] && record docker containerd_busy_rss_kb "$(rss_kb "$containerd_pid")"

    log "$engine: daemon restart with $count running"
    if [[ "$engine" == arca ]]; then
        stop_pid arcad "$arcad_pid" 20
        t0=$(now_ms)
        start_arcad
        daemon_pid="$arcad_pid"
    else
        stop_pid dockerd "$dockerd_pid" 30
        t0=$(now_ms)
        start_dockerd
        daemon_pid="$dockerd_pid"
    fi
    for ((i = 0; i < 6000; i++)); do
        n=$("${cli[@]}" ps -q 2>/dev/null | wc -l)
        [[ "$n" -eq "$count" ]] && break
        sleep 0.01
    done
    t1=$(now_ms)
    [[ "$n" -eq "$count" ]] || die "$engine: only $n of $count containers running after the restart"
    record "$engine" restart_ms $((t1 - t0))

    log "$engine: removing $count containers"
    t0=$(now_ms)
    rm_all "${cli[@]}"
    t1=$(now_ms)
    record "$engine" remove_ms $((t1 - t0))

    log "$engine: $count containers, $parallel at a time"
    t0=$(now_ms)
    seq "$count" | xargs -P "$parallel" -I{} "${run[@]}" >/dev/null
    t1=$(now_ms)
    record "$engine" parallel_ms $((t1 - t0))
    n=$("${cli[@]}" ps -q | wc -l)
    [[ "$n" -eq "$count" ]] || die "$engine: $n of $count containers running after the parallel starts"
    rm_all "${cli[@]}"
}

if want arca; then
    build_arca "$build"
    start_arcad
    "${arca[@]}" load -i "$fixture" >&2
    "${arca[@]}" run --rm --network none busybox true || die "arca cannot run busybox"
    measure arca "${arca[@]}"
    stop_pid arcad "$arcad_pid" 20
    arcad_pid=""
fi
if want docker; then
    start_containerd
    start_dockerd
    "${dk[@]}" load -i "$fixture" >&2
    "${dk[@]}" run --rm --network none busybox true || die "docker cannot run busybox"
    log "docker: $("${dk[@]}" version --format 'client {{.Client.Version}}, server {{.Server.Version}}'), live-restore $("${dk[@]}" info --format '{{.LiveRestoreEnabled}}')"
    measure docker "${dk[@]}"
fi

python3 - "$results" "$count" "$parallel" "$strict" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
count, parallel, strict = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
v = {(e, m): int(x) for e, m, x in rows}
def get(e, m): return v.get((e, m))
metrics = [
    ("sequential_ms", f"{count} sequential starts (ms)"),
    ("parallel_ms", f"{count} starts, {parallel} at a time (ms)"),
    ("remove_ms", f"rm -f of {count} running (ms)"),
    ("shim_rss_kb", "shim RSS per container (KiB)"),
    ("shim_pss_kb", "shim PSS per container (KiB)"),
    ("daemon_idle_rss_kb", "daemon RSS idle (KiB)"),
    ("daemon_busy_rss_kb", f"daemon RSS, {count} running (KiB)"),
    ("containerd_idle_rss_kb", "containerd RSS idle (KiB)"),
    ("containerd_busy_rss_kb", f"containerd RSS, {count} running (KiB)"),
    ("restart_ms", f"daemon restart, {count} running (ms)"),
]
print()
print(f"{'metric':<38} {'arca':>10} {'docker':>10} {'docker/arca':>12}")
for m, label in metrics:
    a, d = get("arca", m), get("docker", m)
    if a is None and d is None: continue
    fa = "-" if a is None else str(a)
    fd = "-" if d is None else str(d)
    r = f"{d / a:.1f}x" if a and d else "-"
    print(f"{label:<38} {fa:>10} {fd:>10} {r:>12}")
print()
missed = 0
def goal(name, ok, shown):
    global missed
    if ok is None:
        print(f"  {name}: not measured"); return
    missed += not ok
    print(f"  {name}: {'MET' if ok else 'MISSED'} ({shown})")
print("goals:")
s = get("arca", "shim_rss_kb")
goal("shim <= 1 MiB RSS per container", None if s is None else s <= 1024, f"{s} KiB")
s = get("arca", "sequential_ms")
goal(f"{count} sequential starts <= 1.5 s", None if s is None else s <= 1500 * count / 50, f"{s} ms")
s = get("arca", "daemon_idle_rss_kb")
goal("arcad <= 15 MiB idle", None if s is None else s <= 15 * 1024, f"{s} KiB")
sys.exit(1 if strict and missed else 0)
PY
