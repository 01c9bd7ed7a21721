#!/usr/bin/env bash
# Pull speed: arca vs Docker (Debian's dockerd + containerd), one run.
#
#   bench/pull.sh [--runs N] [--size-mb N] [--layers N] [--only arca,docker] [--no-build] [--strict]
#
# Generates (once, cached under target/bench-cache/) an image of busybox's layer plus LAYERS
# data layers of SIZE_MB MiB in all (default 320 MiB in 7 layers, about 200 MiB gzipped),
# pushes it to a private docker-registry on 127.0.0.1, then pulls it N times (default 3) with
# each engine, every pull into an empty store. Prints the median pull time, MB/s (gzipped
# bytes / time), the unpack rate (uncompressed bytes / time) against the disk's write speed
# (dd with conv=fsync), and the ratio docker/arca. The stores are on a loop-mounted ext4 in
# the temp dir (see bench/README.md for why). Must run as root.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=3
size_mb=320
layers=7
only="arca,docker"
build=1
strict=0

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --size-mb) size_mb="$2"; shift 2 ;;
        --layers) layers="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --strict) strict=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
BENCH=pull
# shellcheck source=bench/lib/engines.sh
source "$repo_root/bench/lib/engines.sh"
# shellcheck source=bench/lib/registry.sh
source "$repo_root/bench/lib/registry.sh"
image_py="$repo_root/bench/lib/pull_image.py"

[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 1 ]] || die "--runs must be a positive integer"
[[ "$size_mb" =~ ^[0-9]+$ && "$size_mb" -ge 1 ]] || die "--size-mb must be a positive integer"
[[ "$layers" =~ ^[0-9]+$ && "$layers" -ge 1 ]] || die "--layers must be a positive integer"
command -v python3 >/dev/null || die "python3 is missing"
require_registry
want docker && require_docker
engines_init
bench_cleanup_hook=stop_registry
results="$tmp/results.txt"
: >"$results"
record() { echo "$*" >>"$results"; } # engine metric value...

log "image: $size_mb MiB in $layers data layers (cached under target/bench-cache)"
mkdir -p "$repo_root/target/bench-cache"
image_dir="$(python3 "$image_py" build "$repo_root/target/bench-cache" "$size_mb" "$layers" "$fixture")"
meta() { python3 "$image_py" meta "$image_dir" "$1"; }
gz_bytes="$(meta compressed_bytes)"
raw_bytes="$(meta uncompressed_bytes)"
check_path="$(meta check_path)"
check_sha="$(meta check_sha256)"
record image compressed_bytes "$gz_bytes"
record image uncompressed_bytes "$raw_bytes"
record image layers "$(meta layers)"
record image files "$(meta files)"

start_registry
ref="$registry_host/bench:1"
log "pushing $ref"
python3 "$image_py" push "$image_dir" "$registry_host" bench 1

# The stores live on a file system of their own: an ext4 (with its journal, as mkfs makes
# it) in a sparse file under the temp dir, loop-mounted, so that what other processes do to
# the host's file system does not change the results. Why: this VM's root file system is
# ext4 without a journal, and there creating an inode skips, by reading the inode table,
# every free inode of its block group deleted in the last 60 s (360 s while the table block
# is dirty). After a large deletion nearby (the previous bench run's temp dir, a test suite
# running alongside), every file a pull creates costs a scan: perf showed 65% of arcad's
# time in the kernel's recently_deleted(), pulls took 6-11 s instead of 2.6 s, dockerd's too.
# Every pull also gets a fresh daemon with an empty store of its own, and nothing is
# deleted on that file system before the end, for the same reason.
fs_bytes=$(( (gz_bytes + raw_bytes) * runs * 2 + raw_bytes + (1 << 30) ))
log "stores: ext4 of $((fs_bytes >> 20)) MiB (sparse file, loop-mounted) at $tmp/fs"
truncate -s "$fs_bytes" "$tmp/fs.img"
# Inode tables and journal written now: lazy init would write them during the pulls.
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$tmp/fs.img" || die "mkfs.ext4 failed"
mkdir "$tmp/fs"
mount -o loop "$tmp/fs.img" "$tmp/fs" || die "cannot loop-mount $tmp/fs.img"
fs="$tmp/fs"

# Disk write speed: as many bytes as the image unpacks to, to the engines' file system,
# fsynced before dd ends.
sync
log "disk: dd of $((raw_bytes >> 20)) MiB with conv=fsync"
t0=$(now_ms)
dd if=/dev/zero of="$fs/dd.bin" bs=1M count=$((raw_bytes >> 20)) conv=fsync status=none
t1=$(now_ms)
rm -f "$fs/dd.bin"
sync
record disk dd_ms $((t1 - t0)) $(((raw_bytes >> 20) << 20))

# cpu_ms PID...: CPU time (user + system, with reaped children) the processes used so far.
clk_tck="$(getconf CLK_TCK)"
cpu_ms() {
    local pid ticks=0 f
    for pid in "$@"; do
        # Fields after the command name (which may hold spaces): utime is the 12th.
        f="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null)" || continue
        read -r -a f <<<"$f"
        ticks=$((ticks + f[11] + f[12] + f[13] + f[14]))
    done
    echo $((ticks * 1000 / clk_tck))
}

# timed_pull ENGINE RUN CLIENT...: one pull (output to a log; shown if it fails), then a
# sync, both timed. arca's store fsyncs what it writes, dockerd does not: the "+sync" time
# compares the two with everything on disk.
timed_pull() {
    local engine="$1" run="$2" t0 t1 t2 c0 c1 daemons load
    shift 2
    local out="$tmp/$engine-pull-$run.log"
    daemons=("$arcad_pid")
    [[ "$engine" == docker ]] && daemons=("$dockerd_pid" "$containerd_pid")
    sync
    # Other work on the host slows both engines alike only if it is steady: shown per run.
    read -r load _ </proc/loadavg
    c0=$(cpu_ms "${daemons[@]}")
    t0=$(now_ms)
    if ! "$@" pull "$ref" >"$out" 2>&1; then
        cat "$out" >&2
        die "$engine: pull $ref failed (run $run)"
    fi
    t1=$(now_ms)
    c1=$(cpu_ms "${daemons[@]}")
    sync
    t2=$(now_ms)
    record "$engine" pull "$run" $((t1 - t0)) $((t2 - t0)) $((c1 - c0))
    log "$engine: run $run: pull $((t1 - t0)) ms, with sync $((t2 - t0)) ms, daemon CPU $((c1 - c0)) ms (load average before: $load)"
}

# content_check ENGINE CLIENT...: a container of the pulled image hashes one of its files.
content_check() {
    local engine="$1" got
    shift
    got="$("$@" run --rm --network none "$ref" sha256sum "$check_path" 2>&1)" || true
    if [[ "${got%% *}" == "$check_sha" ]]; then
        record "$engine" content_ok 1
    else
        log "$engine: content check failed: $got"
        record "$engine" content_ok 0
    fi
}

# count_entries DIR: entries directly in DIR (0 if it does not exist).
count_entries() { find "$1" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

if want arca; then
    if [[ "$build" -eq 1 ]]; then
        # Always through cargo: a stale target/release would measure old code.
        log "building arca (cargo build --release -p arca)"
        (cd "$repo_root" && cargo build --release --locked -p arca) || die "arca failed to build"
    fi
    build_arca 0
    for ((r = 1; r <= runs; r++)); do
        arca_root="$fs/arca-root.$r" arca_exec_root="$tmp/arca-run.$r"
        start_arcad
        timed_pull arca "$r" "${arca[@]}"
        if [[ "$r" -eq "$runs" ]]; then
            content_check arca "${arca[@]}"
            # What rmi leaves behind (informational: arca has no image prune yet).
            "${arca[@]}" rmi "$ref" >/dev/null 2>&1 || log "arca: rmi $ref failed"
            record arca after_rmi_blobs "$(count_entries "$arca_root/content/blobs/sha256")"
            record arca after_rmi_snapshots "$(count_entries "$arca_root/snapshots")"
        fi
        stop_pid arcad "$arcad_pid" 20
        arcad_pid=""
    done
fi

# docker_leftovers: what dockerd's stores hold (image, layer, overlay2 dir, download temp
# file, layer-sized blob in containerd's content store).
docker_leftovers() {
    local left
    left="$("${dk[@]}" images -aq | wc -l) images"
    left+=", $(count_entries "$docker_data/image/overlay2/layerdb/sha256") layers"
    left+=", $(find "$docker_data/overlay2" -mindepth 1 -maxdepth 1 ! -name l 2>/dev/null | wc -l) overlay2 dirs"
    left+=", $(count_entries "$docker_data/tmp") tmp files"
    # dockerd 20.10 keeps layers in its graph driver but caches manifests in containerd's
    # content store: small blobs are not layers and do not count.
    left+=", $(find "$tmp/containerd-root/io.containerd.content.v1.content" -type f -size +64k 2>/dev/null | wc -l) containerd blobs"
    echo "$left"
}
empty="0 images, 0 layers, 0 overlay2 dirs, 0 tmp files, 0 containerd blobs"

if want docker; then
    start_containerd
    for ((r = 1; r <= runs; r++)); do
        docker_data="$fs/docker-data.$r"
        start_dockerd
        if [[ "$r" -eq 1 ]]; then
            log "docker: $("${dk[@]}" version --format 'client {{.Client.Version}}, server {{.Server.Version}}')"
            insecure="$("${dk[@]}" info --format '{{json .RegistryConfig.InsecureRegistryCIDRs}}')"
            [[ "$insecure" == *'"127.0.0.0/8"'* ]] ||
                die "dockerd does not treat 127.0.0.0/8 as an insecure registry ($insecure)"
        fi
        left="$(docker_leftovers)"
        [[ "$left" == "$empty" ]] || die "docker: store not empty before pull $r: $left"
        timed_pull docker "$r" "${dk[@]}"
        if [[ "$r" -eq "$runs" ]]; then
            content_check docker "${dk[@]}"
            # rmi + image prune empty dockerd's store (checked; dockerd removes layers in the
            # background, hence the wait).
            "${dk[@]}" rmi "$ref" >/dev/null
            "${dk[@]}" image prune -af >/dev/null
            for ((i = 0; i < 100; i++)); do
                left="$(docker_leftovers)"
                [[ "$left" == "$empty" ]] && break
                sleep 0.1
            done
            [[ "$left" == "$empty" ]] || log "docker: store not empty 10 s after rmi + image prune: $left"
        fi
        stop_pid dockerd "$dockerd_pid" 20
        dockerd_pid=""
    done
fi

python3 - "$results" "$strict" <<'PY'
import statistics
import sys

rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
strict = sys.argv[2] == "1"
MB = 1e6
img = {r[1]: int(r[2]) for r in rows if r[0] == "image"}
gz, raw = img["compressed_bytes"], img["uncompressed_bytes"]
dd = next(r for r in rows if r[0] == "disk")
dd_rate = int(dd[3]) / MB / (int(dd[2]) / 1000)
pulls = {}
for r in rows:
    if r[1] == "pull":
        pulls.setdefault(r[0], []).append((int(r[3]) / 1000, int(r[4]) / 1000, int(r[5]) / 1000))
info = {(r[0], r[1]): int(r[2]) for r in rows if len(r) == 3 and r[0] != "image"}

print()
print(f"image: {img['layers']} layers, {img['files']} files, {gz / MB:.1f} MB gzipped, "
      f"{raw / MB:.1f} MB unpacked")
print(f"disk:  dd {int(dd[3]) / MB:.0f} MB with conv=fsync: {dd_rate:.0f} MB/s")
print()
med = {}
hdr = (f"{'engine':<8} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7} {'MB/s gz':>8} "
       f"{'unpack MB/s':>12} {'vs disk':>8} {'+sync s':>8} {'CPU s':>6} {'content':>8}")
print(hdr)
for e in ("arca", "docker"):
    if e not in pulls:
        continue
    t = [p[0] for p in pulls[e]]
    ts = [p[1] for p in pulls[e]]
    cpu = statistics.median(p[2] for p in pulls[e])
    m = statistics.median(t)
    med[e] = (m, statistics.median(ts))
    ok = info.get((e, "content_ok"))
    content = "-" if ok is None else ("ok" if ok else "WRONG")
    print(f"{e:<8} {len(t):>4} {m:>9.2f} {min(t):>7.2f} {max(t):>7.2f} {gz / MB / m:>8.1f} "
          f"{raw / MB / m:>12.1f} {raw / MB / m / dd_rate:>7.0%} {med[e][1]:>8.2f} {cpu:>6.1f} {content:>8}")
if "arca" in med and "docker" in med:
    print()
    print(f"docker/arca: {med['docker'][0] / med['arca'][0]:.2f}x "
          f"(with sync: {med['docker'][1] / med['arca'][1]:.2f}x)")
if ("arca", "after_rmi_blobs") in info:
    print(f"arca rmi left {info[('arca', 'after_rmi_blobs')]} blobs and "
          f"{info[('arca', 'after_rmi_snapshots')]} snapshots in its store (rmi keeps content; image prune frees it)")
print()
missed = 0
def goal(name, ok, shown):
    global missed
    if ok is None:
        print(f"  {name}: not measured")
        return
    missed += not ok
    print(f"  {name}: {'MET' if ok else 'MISSED'} ({shown})")
print("goals:")
if "arca" in med and "docker" in med:
    r = med["docker"][0] / med["arca"][0]
    goal("arca >= 2x faster than dockerd", r >= 2, f"docker/arca {r:.2f}x")
else:
    goal("arca >= 2x faster than dockerd", None, "")
if "arca" in med:
    # "At disk speed": everything the image unpacks to, fsynced, at least 80% as fast as dd
    # writes as many bytes (arca also writes the gzipped blobs, and downloads and hashes).
    v = raw / MB / med["arca"][1] / dd_rate
    goal("arca unpacks at disk speed (pull+sync >= 80% of dd)", v >= 0.8, f"{v:.0%} of dd")
else:
    goal("arca unpacks at disk speed", None, "")
for e in med:
    if info.get((e, "content_ok")) == 0:
        missed += 1
        print(f"  {e}: the pulled image's content is wrong")
sys.exit(1 if strict and missed else 0)
PY
