#!/usr/bin/env bash
# Container start latency: arca vs Docker (dockerd + containerd + runc) vs runc vs crun.
#
#   bench/run-latency.sh [--runs N] [--warmup N] [--only arca,docker,runc,crun] [--no-build] [--strict]
#
# Every engine runs privately under one temp dir (own sockets, roots, state dirs); nothing
# on the host is reused or changed (no bridge, no iptables, no ip_forward change), and
# everything started is stopped by PID on exit. Must run as root. See bench/README.md.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=30
warmup=3
only="arca,docker,runc,crun"
build=1
strict=0

usage() { sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --strict) strict=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
log() { echo "== $*" >&2; }
die() { echo "run-latency: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (containers need privileges)"
[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 1 ]] || die "--runs must be a positive integer"
[[ "$runs" -ge 20 ]] || log "warning: --runs $runs < 20; medians will be noisy"

# ---- prerequisites --------------------------------------------------------------------
install_hint="apt-get install -y docker.io hyperfine runc crun busybox-static"
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v python3 >/dev/null || missing+=(python3)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
if want docker; then
    command -v dockerd >/dev/null || missing+=("dockerd (docker.io)")
    command -v containerd >/dev/null || missing+=("containerd (docker.io)")
fi
if want runc || want docker; then command -v runc >/dev/null || missing+=(runc); fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "run-latency: missing: ${missing[*]}" >&2
    echo "run-latency: install with: $install_hint" >&2
    exit 1
fi
# The client that ships with this dockerd (Debian: /usr/bin/docker), else any docker on PATH.
docker_cli="${DOCKER:-}"
if want docker && [[ -z "$docker_cli" ]]; then
    if [[ -x /usr/bin/docker ]]; then docker_cli=/usr/bin/docker
    else docker_cli="$(command -v docker || true)"; fi
    [[ -n "$docker_cli" ]] || die "no docker client found; install with: $install_hint"
fi

# ---- temp dir and cleanup -------------------------------------------------------------
tmp="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/arca-bench.XXXXXX")"
chmod 0711 "$tmp"
arcad_pid="" dockerd_pid="" containerd_pid="" hyperfine_pid=""
created_cgroups=()
# Host paths dockerd/containerd create whatever their roots are: the shim socket dir, the
# plugin dir, the 20.10 trust key. Removed afterwards if they did not exist before (dirs only
# when empty).
host_paths=(/etc/docker/key.json /etc/docker /run/docker/plugins /run/docker /run/containerd/s /run/containerd)
created_host_paths=()

stop_pid() { # stop_pid NAME PID TIMEOUT_SECONDS: SIGTERM, wait (bounded), then SIGKILL
    local name="$1" pid="$2" timeout="$3" i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "run-latency: $name (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid mnt rt cg p
    trap - EXIT INT TERM
    set +e
    stop_pid hyperfine "$hyperfine_pid" 5
    # Leftover OCI containers in our private state roots.
    for rt in runc crun; do
        [[ -d "$tmp/$rt-state" ]] || continue
        for id in $("$rt" --root "$tmp/$rt-state" list -q 2>/dev/null); do
            "$rt" --root "$tmp/$rt-state" delete -f "$id" >/dev/null 2>&1
        done
    done
    stop_pid arcad "$arcad_pid" 10
    stop_pid dockerd "$dockerd_pid" 20
    stop_pid containerd "$containerd_pid" 10
    # Anything else still running that was started against our temp dir (shims).
    # shellcheck disable=SC2013 # grep -l prints file names, one per line
    for pid in $(grep -lsF -- "$tmp" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
        [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
        stop_pid "leftover process" "$pid" 5
    done
    # Unmount everything under the temp dir, deepest first.
    for _ in 1 2 3; do
        mnts="$(awk -v t="$tmp" '{ m = $5; gsub(/\\040/, " ", m); if (m == t || index(m, t "/") == 1) print m }' \
            /proc/self/mountinfo | sort -r)"
        [[ -z "$mnts" ]] && break
        while IFS= read -r mnt; do
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
        done <<<"$mnts"
    done
    # Parent cgroups that dockerd created and that are empty now.
    for cg in "${created_cgroups[@]}"; do rmdir "$cg" 2>/dev/null; done
    for p in "${created_host_paths[@]}"; do
        if [[ -d "$p" && ! -L "$p" ]]; then rmdir "$p" 2>/dev/null; else rm -f "$p"; fi
    done
    rm -rf --one-file-system "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- fixture: busybox image + an OCI bundle from the same layer -----------------------
fixture="$repo_root/target/fixtures/busybox.tar"
if [[ ! -f "$fixture" ]]; then
    log "building busybox fixture"
    "$repo_root/fixtures/build-busybox.sh" "$fixture" busybox:latest >/dev/null
fi
bundle="$tmp/bundle"
mkdir -p "$bundle/rootfs"
python3 - "$fixture" "$tmp/layer.tar" <<'PY'
import json, shutil, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    layers = json.load(t.extractfile("manifest.json"))[0]["Layers"]
    assert len(layers) == 1, "expected a single-layer fixture"
    with t.extractfile(layers[0]) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
tar -xf "$tmp/layer.tar" -C "$bundle/rootfs"
rm -f "$tmp/layer.tar"
if want runc || want crun; then
    runc spec --bundle "$bundle"
    python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["true"]
c["process"]["terminal"] = False
ns = [n["type"] for n in c["linux"]["namespaces"]]
assert "network" in ns, ns  # private, empty network namespace: the equivalent of --network none
json.dump(c, open(p, "w"), indent=1)
PY
fi

commands=()   # pairs: name, command line (run by hyperfine through sh; its spawn time is subtracted)
add() { commands+=("$1" "$2"); }

# ---- arca -----------------------------------------------------------------------------
if want arca; then
    rel="$repo_root/target/release"
    if [[ ! -x "$rel/arca" || ! -x "$rel/arcad" || ! -x "$rel/arca-shim" ]]; then
        [[ $build -eq 1 ]] || die "arca is not built ($rel/{arca,arcad,arca-shim}); run: cargo build --release -p arca (or use --only docker,runc,crun)"
        log "building arca (cargo build --release -p arca)"
        (cd "$repo_root" && cargo build --release --locked -p arca) ||
            die "arca failed to build; fix the build or benchmark the others with: --only docker,runc,crun"
    fi
    arca_sock="$tmp/arca.sock"
    log "starting arcad on unix://$arca_sock"
    "$rel/arcad" --host "unix://$arca_sock" --root "$tmp/arca-root" --exec-root "$tmp/arca-run" \
        >"$tmp/arcad.log" 2>&1 &
    arcad_pid=$!
    for ((i = 0; i < 100; i++)); do
        [[ -S "$arca_sock" ]] && "$rel/arca" -H "unix://$arca_sock" version >/dev/null 2>&1 && break
        kill -0 "$arcad_pid" 2>/dev/null || { cat "$tmp/arcad.log" >&2; die "arcad exited during startup"; }
        sleep 0.1
    done
    "$rel/arca" -H "unix://$arca_sock" version >/dev/null 2>&1 ||
        { cat "$tmp/arcad.log" >&2; die "arcad did not answer on $arca_sock within 10s"; }
    "$rel/arca" -H "unix://$arca_sock" load -i "$fixture" >&2
    arca_cmd="$rel/arca -H unix://$arca_sock run --rm --network none busybox true"
    $arca_cmd || { cat "$tmp/arcad.log" >&2; die "'$arca_cmd' failed"; }
    add arca "$arca_cmd"
fi

# ---- docker (dockerd + its own containerd + runc) -------------------------------------
if want docker; then
    for p in "${host_paths[@]}"; do [[ -e "$p" ]] || created_host_paths+=("$p"); done
    # Remember which "docker" parent cgroups do not exist yet, to remove them if left empty.
    while IFS= read -r mp; do
        [[ -e "$mp/docker" ]] || created_cgroups+=("$mp/docker")
    done < <(awk '$0 ~ / - cgroup2? / { print $5 }' /proc/self/mountinfo)
    # A dedicated containerd: left alone, dockerd would attach to a system containerd at
    # /run/containerd/containerd.sock if one is running.
    mkdir -p "$tmp/containerd-root" "$tmp/containerd-state"
    cat >"$tmp/containerd.toml" <<EOF
version = 2
root = "$tmp/containerd-root"
state = "$tmp/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$tmp/containerd.sock"
[debug]
  address = ""
EOF
    log "starting containerd on $tmp/containerd.sock"
    containerd --config "$tmp/containerd.toml" --log-level warn >"$tmp/containerd.log" 2>&1 &
    containerd_pid=$!
    for ((i = 0; i < 100; i++)); do [[ -S "$tmp/containerd.sock" ]] && break; sleep 0.1; done
    [[ -S "$tmp/containerd.sock" ]] || { cat "$tmp/containerd.log" >&2; die "containerd did not start"; }

    docker_sock="$tmp/docker.sock"
    echo '{}' >"$tmp/daemon.json"
    log "starting dockerd on unix://$docker_sock"
    dockerd -H "unix://$docker_sock" --config-file "$tmp/daemon.json" \
        --containerd "$tmp/containerd.sock" \
        --data-root "$tmp/docker-data" --exec-root "$tmp/docker-exec" --pidfile "$tmp/docker.pid" \
        --bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --log-level warn >"$tmp/dockerd.log" 2>&1 &
    dockerd_pid=$!
    export DOCKER_CONFIG="$tmp/docker-cli-config"
    dk=("$docker_cli" -H "unix://$docker_sock")
    for ((i = 0; i < 300; i++)); do
        "${dk[@]}" version >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { cat "$tmp/dockerd.log" >&2; die "dockerd exited during startup"; }
        sleep 0.1
    done
    "${dk[@]}" version >/dev/null 2>&1 || { cat "$tmp/dockerd.log" >&2; die "dockerd did not answer within 30s"; }
    "${dk[@]}" load -i "$fixture" >&2
    docker_cmd="DOCKER_CONFIG=$DOCKER_CONFIG ${dk[*]} run --rm --network none busybox true"
    sh -c "$docker_cmd" || { cat "$tmp/dockerd.log" >&2; die "'$docker_cmd' failed"; }
    log "docker: $("${dk[@]}" version --format 'client {{.Client.Version}}, server {{.Server.Version}}'), storage $("${dk[@]}" info --format '{{.Driver}}'), image $("${dk[@]}" image inspect --format '{{.Id}}' busybox)"
    add docker "$docker_cmd"
fi

# ---- runc / crun on the same bundle ---------------------------------------------------
# `run` without --detach deletes the container when it exits; ids are still unique per run
# ($$ is the pid of the shell hyperfine spawns for each run).
if want runc; then
    runc_cmd="runc --root $tmp/runc-state run --bundle $bundle runc-bench-\$\$"
    sh -c "$runc_cmd" || die "'$runc_cmd' failed"
    add runc "$runc_cmd"
fi
if want crun; then
    if ! command -v crun >/dev/null; then
        log "crun: not installed (apt-get install -y crun); skipped"
    else
        crun_cmd="crun --root $tmp/crun-state run --bundle $bundle crun-bench-\$\$"
        if err="$(sh -c "$crun_cmd" 2>&1)"; then
            add crun "$crun_cmd"
        else
            echo "crun: refused on this host: $(echo "$err" | tail -n 3 | tr '\n' ' ')" >&2
        fi
    fi
fi

[[ ${#commands[@]} -gt 0 ]] || die "nothing to benchmark"

# ---- measure --------------------------------------------------------------------------
hf=(hyperfine --warmup "$warmup" --runs "$runs" --export-json "$tmp/results.json" --style basic)
for ((i = 0; i < ${#commands[@]}; i += 2)); do
    hf+=(--command-name "${commands[i]}" "${commands[i + 1]}")
done
log "hyperfine: warmup $warmup, $runs runs per command"
"${hf[@]}" >&2 &   # in the background so that a SIGTERM/SIGINT to this script is handled at once
hyperfine_pid=$!
wait "$hyperfine_pid"
hyperfine_pid=""

python3 - "$tmp/results.json" "$strict" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
strict = sys.argv[2] == "1"
ms = lambda s: s * 1000.0
print()
print(f"{'engine':<8} {'median ms':>10} {'mean ms':>10} {'stddev':>8} {'min ms':>8} {'max ms':>8} {'runs':>5}")
for name in ["arca", "docker", "runc", "crun"]:
    if name in res:
        r = res[name]
        print(f"{name:<8} {ms(r['median']):>10.1f} {ms(r['mean']):>10.1f} {ms(r['stddev'] or 0):>8.1f} "
              f"{ms(r['min']):>8.1f} {ms(r['max']):>8.1f} {len(r['times']):>5}")
med = {k: v["median"] for k, v in res.items()}
print()
def ratio(a, b):
    if a in med and b in med and med[b] > 0:
        print(f"{a + '/' + b:<12} {med[a] / med[b]:8.2f}x")
for a, b in [("docker", "arca"), ("runc", "arca"), ("arca", "runc"), ("crun", "arca"), ("docker", "runc")]:
    ratio(a, b)
print()
missed = 0
print("goals:")
if "arca" in med and "docker" in med:
    ok = med["docker"] / med["arca"] >= 10
    missed += not ok
    print(f"  arca >= 10x faster than dockerd (docker/arca >= 10): {'MET' if ok else 'MISSED'} "
          f"({med['docker'] / med['arca']:.1f}x)")
else:
    print("  arca >= 10x faster than dockerd: not measured (needs arca and docker)")
if "arca" in med and "runc" in med:
    ok = med["arca"] <= med["runc"]
    missed += not ok
    print(f"  arca <= runc (arca/runc <= 1): {'MET' if ok else 'MISSED'} ({med['arca'] / med['runc']:.2f})")
else:
    print("  arca <= runc: not measured (needs arca and runc)")
sys.exit(1 if strict and missed else 0)
PY
