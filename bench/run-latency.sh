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
BENCH=run-latency
# shellcheck source=bench/lib/engines.sh
source "$repo_root/bench/lib/engines.sh"

[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 1 ]] || die "--runs must be a positive integer"
[[ "$runs" -ge 20 ]] || log "warning: --runs $runs < 20; medians will be noisy"

# ---- prerequisites --------------------------------------------------------------------
install_hint="apt-get install -y docker.io hyperfine runc crun busybox-static"
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v python3 >/dev/null || missing+=(python3)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
if want runc || want docker; then command -v runc >/dev/null || missing+=(runc); fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "run-latency: missing: ${missing[*]}" >&2
    echo "run-latency: install with: $install_hint" >&2
    exit 1
fi
want docker && require_docker
engines_init
runtime_leftovers() { # OCI containers left in our private runc/crun state roots
    local rt id
    for rt in runc crun; do
        [[ -d "$tmp/$rt-state" ]] || continue
        for id in $("$rt" --root "$tmp/$rt-state" list -q 2>/dev/null); do
            "$rt" --root "$tmp/$rt-state" delete -f "$id" >/dev/null 2>&1
        done
    done
}
bench_cleanup_hook=runtime_leftovers

# ---- fixture: busybox image + an OCI bundle from the same layer -----------------------
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
    build_arca "$build"
    start_arcad
    "${arca[@]}" load -i "$fixture" >&2
    arca_cmd="${arca[*]} run --rm --network none busybox true"
    $arca_cmd || { cat "$tmp/arcad.log" >&2; die "'$arca_cmd' failed"; }
    add arca "$arca_cmd"
fi

# ---- docker (dockerd + its own containerd + runc) -------------------------------------
if want docker; then
    start_containerd
    start_dockerd
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
