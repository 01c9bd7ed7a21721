#!/usr/bin/env bash
# Bridge networking: arca vs Docker (Debian's dockerd with its bridge, iptables rules and
# docker-proxy, as users get it), one run.
#
#   bench/network.sh [--runs N] [--warmup N] [--conn-seconds S] [--conn-rounds R]
#                    [--connections C] [--stream-mb MB] [--stream-runs N]
#                    [--only arca,docker] [--no-build] [--strict]
#
# 1. start latency: `run --rm busybox true` on the default bridge vs `--network none` (hyperfine);
# 2. connection rate: wrk with `Connection: close` against busybox httpd published with
#    `-p HOSTPORT:80`, on 127.0.0.1;
# 3. throughput: one TCP stream of --stream-mb MiB from the host to 127.0.0.1:HOSTPORT,
#    published by a container running `nc -l -e dd of=/dev/null bs=1M`.
# Both engines get a bridge, subnet and (arca) nftables table of their own; everything
# started is stopped by PID and every bridge, table, chain and rule added is removed on
# exit. Traffic goes only to 127.0.0.1. Must run as root. See bench/README.md.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=30
warmup=3
conn_seconds=4
conn_rounds=3
connections=8
stream_mb=1024
stream_runs=5
only="arca,docker"
build=1
strict=0

usage() { sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --conn-seconds) conn_seconds="$2"; shift 2 ;;
        --conn-rounds) conn_rounds="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --stream-mb) stream_mb="$2"; shift 2 ;;
        --stream-runs) stream_runs="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --strict) strict=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
for v in runs warmup conn_seconds conn_rounds connections stream_mb stream_runs; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "network: --${v//_/-} must be a non-negative integer" >&2; exit 2; }
done

# Bridges, subnets and the nftables table of this bench only (override if they clash).
arca_bridge="${ARCA_BRIDGE:-arcabench0}"
arca_bip="${ARCA_BIP:-10.239.0.1/24}"
arca_table="${ARCA_TABLE:-arca_bench}"
docker_bridge="${DOCKER_BRIDGE:-dockbench0}"
docker_bip="${DOCKER_BIP:-10.238.0.1/24}"

BENCH=network
# arcad: its default network on its own bridge and table. dockerd: bridge, iptables, ip
# forwarding and masquerading on (its defaults, the userland proxy included) on a bridge
# this script creates, so that a docker0 of the host's own dockerd is never touched.
arcad_net_args=(--bridge "$arca_bridge" --bip "$arca_bip" --firewall-table "$arca_table")
dockerd_net_args=(--ip6tables=false)
DOCKERD_CONFIG="{\"bridge\": \"$docker_bridge\"}"
# shellcheck source=bench/lib/engines.sh
source "$repo_root/bench/lib/engines.sh"

[[ "$runs" -ge 1 && "$conn_rounds" -ge 1 && "$stream_runs" -ge 1 && "$stream_mb" -ge 1 ]] ||
    die "--runs, --conn-rounds, --stream-runs and --stream-mb must be at least 1"
[[ "$runs" -ge 20 ]] || log "warning: --runs $runs < 20; medians will be noisy"

# ---- prerequisites --------------------------------------------------------------------
install_hint="apt-get install -y docker.io hyperfine wrk curl iptables nftables busybox-static"
missing=()
for tool in hyperfine wrk curl python3 nft ip ss; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if want docker; then command -v iptables-save >/dev/null || missing+=(iptables); fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "network: missing: ${missing[*]}" >&2
    echo "network: install with: $install_hint" >&2
    exit 1
fi
want docker && require_docker

# Refuse to start on names or subnets already in use: nothing of the host's is reused.
preflight() {
    local b
    for b in "$arca_bridge" "$docker_bridge"; do
        ! ip link show dev "$b" >/dev/null 2>&1 || die "interface $b exists already (set ARCA_BRIDGE/DOCKER_BRIDGE)"
    done
    ! nft list table ip "$arca_table" >/dev/null 2>&1 || die "nftables table ip $arca_table exists already (set ARCA_TABLE)"
    python3 - "$arca_bip" "$docker_bip" <<'PY' || die "a bench subnet overlaps the host's (set ARCA_BIP/DOCKER_BIP)"
import ipaddress, json, subprocess, sys
ours = [ipaddress.ip_interface(a).network for a in sys.argv[1:]]
if ours[0].overlaps(ours[1]):
    sys.exit(f"network: {ours[0]} overlaps {ours[1]}")
routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"],
                                   capture_output=True, text=True, check=True).stdout or "[]")
for r in routes:
    dst = r.get("dst", "")
    if dst in ("", "default") or r.get("type") in ("broadcast",):
        continue
    try:
        net = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        continue
    if net.prefixlen == 0 or net.is_loopback:
        continue
    for o in ours:
        if o.overlaps(net):
            sys.exit(f"network: {o} overlaps the host's route {dst} ({r.get('dev', '?')})")
PY
}
preflight

engines_init
results="$tmp/results.txt"
: >"$results"
record() { echo "$1 $2 $3" >>"$results"; } # engine metric value

# ---- what the engines change on the host, and undoing it -----------------------------
# arcad: its bridge (and the veths of its containers), its table, ip_forward and the
# bridge's route_localnet. dockerd: its rules and chains in iptables' filter and nat tables
# (which dockerd does not remove when it stops), ip_forward, br_netfilter's sysctls. The
# sysctls are put back as they were; rules are removed by difference with a snapshot,
# limited to those naming DOCKER, docker's bridge or its subnet (never another's rule).
sysctls=(/proc/sys/net/ipv4/ip_forward /proc/sys/net/bridge/bridge-nf-call-iptables
    /proc/sys/net/bridge/bridge-nf-call-ip6tables)
declare -A sysctl_before=()
for f in "${sysctls[@]}"; do [[ -r "$f" ]] && sysctl_before[$f]="$(cat "$f")"; done
nft list tables >"$tmp/nft-tables.before" 2>/dev/null || true
if want docker; then
    iptables-save >"$tmp/iptables.before" 2>/dev/null || die "iptables-save failed"
    # dockerd refuses a non-default bridge it did not create: it is made here.
    ip link add "$docker_bridge" type bridge || die "cannot create bridge $docker_bridge"
    created_docker_bridge=1
    ip addr add "$docker_bip" dev "$docker_bridge"
    ip link set "$docker_bridge" up
fi
# The lock file of iptables (legacy), if dockerd's calls create it.
[[ -e /run/xtables.lock ]] || created_host_paths+=(/run/xtables.lock)

undo_host_changes() {
    local b l t tables
    # Bridges (with any veth still attached to them).
    for b in "$arca_bridge" "$docker_bridge"; do
        [[ "$b" == "$docker_bridge" && -z "${created_docker_bridge:-}" ]] && continue
        [[ "$b" == "$arca_bridge" ]] && ! want arca && continue
        ip link show dev "$b" >/dev/null 2>&1 || continue
        for l in $(ip -o link show master "$b" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
            ip link del "$l" 2>/dev/null && echo "network: removed leftover $l (on $b)" >&2
        done
        ip link del "$b" 2>/dev/null || echo "network: could not remove bridge $b" >&2
    done
    if want arca; then
        nft delete table ip "$arca_table" 2>/dev/null || true
    fi
    if [[ -f "$tmp/iptables.before" ]]; then
        iptables-save >"$tmp/iptables.after" 2>/dev/null
        python3 - "$tmp/iptables.before" "$tmp/iptables.after" "$docker_bridge" "$docker_bip" \
            >"$tmp/iptables.undo" <<'PY'
import ipaddress, shlex, sys
def parse(path):
    tables, t = {}, None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("*"):
            t = line[1:]
            tables[t] = {"chains": {}, "rules": []}
        elif line.startswith(":") and t:
            name, policy = line[1:].split()[:2]
            tables[t]["chains"][name] = policy
        elif line.startswith("-A ") and t:
            tables[t]["rules"].append(line[3:])
    return tables
before, after = parse(sys.argv[1]), parse(sys.argv[2])
bridge = sys.argv[3]
net = str(ipaddress.ip_interface(sys.argv[4]).network)
prefix = net.rsplit(".", 1)[0] + "."
def docker_ish(s):
    return "DOCKER" in s or bridge in s or prefix in s
for t, a in after.items():
    b = before.get(t, {"chains": {}, "rules": []})
    for rule in reversed(a["rules"]):
        if rule not in b["rules"] and docker_ish(rule):
            print(f"iptables -w -t {t} -D {rule}")
    for chain in a["chains"]:
        if chain not in b["chains"] and chain.startswith("DOCKER"):
            print(f"iptables -w -t {t} -F {chain}")
    for chain in a["chains"]:
        if chain not in b["chains"] and chain.startswith("DOCKER"):
            print(f"iptables -w -t {t} -X {chain}")
    for chain, policy in a["chains"].items():
        if chain in b["chains"] and policy != "-" and b["chains"][chain] != policy:
            print(f"iptables -w -t {t} -P {chain} {b['chains'][chain]}")
PY
        if [[ -s "$tmp/iptables.undo" ]]; then
            echo "network: removing dockerd's iptables rules and chains ($(grep -c -- ' -D ' "$tmp/iptables.undo") rules)" >&2
            bash -c "$(cat "$tmp/iptables.undo")" 2>&1 | sed 's/^/network: iptables: /' >&2
        fi
        # iptables-nft tables that did not exist before and are left without a rule.
        tables="$(nft list tables 2>/dev/null || true)"
        for t in filter nat; do
            grep -qx "table ip $t" "$tmp/nft-tables.before" && continue
            grep -qx "table ip $t" <<<"$tables" || continue
            if ! iptables-save -t "$t" 2>/dev/null | grep -q '^-A '; then
                nft delete table ip "$t" 2>/dev/null || true
            fi
        done
    fi
    for f in "${!sysctl_before[@]}"; do
        [[ -w "$f" && "$(cat "$f")" != "${sysctl_before[$f]}" ]] && echo "${sysctl_before[$f]}" >"$f"
    done
    return 0
}
bench_after_stop_hook=undo_host_changes

# free_port: a TCP port nothing listens on now (the engines then hold it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

# ---- start the engines ----------------------------------------------------------------
engines=()
if want arca; then
    build_arca "$build"
    start_arcad
    "${arca[@]}" load -i "$fixture" >&2
    grep -i "bridge networking is not available" "$tmp/arcad.log" >&2 &&
        die "arcad has no bridge networking (log: above)"
    engines+=(arca)
fi
if want docker; then
    start_containerd
    start_dockerd
    "${dk[@]}" load -i "$fixture" >&2
    log "docker: $("${dk[@]}" version --format 'client {{.Client.Version}}, server {{.Server.Version}}'), storage $("${dk[@]}" info --format '{{.Driver}}'), bridge $docker_bridge $docker_bip"
    engines+=(docker)
fi
[[ ${#engines[@]} -gt 0 ]] || die "nothing to benchmark (--only arca,docker)"
cli() { if [[ "$1" == arca ]]; then echo "${arca[*]}"; else echo "DOCKER_CONFIG=$DOCKER_CONFIG ${dk[*]}"; fi; }
client() { # client ENGINE ARGS...: runs the engine's CLI
    local e="$1"; shift
    if [[ "$e" == arca ]]; then "${arca[@]}" "$@"; else "${dk[@]}" "$@"; fi
}
daemon_log() { if [[ "$1" == arca ]]; then echo "$tmp/arcad.log"; else echo "$tmp/dockerd.log"; fi; }
fail() { # fail ENGINE MESSAGE: the daemon's log tail, then die
    echo "---- last lines of $(daemon_log "$1") ----" >&2
    tail -n 30 "$(daemon_log "$1")" >&2
    die "$1: $2"
}

# ---- 1. start latency: default bridge vs --network none ------------------------------
commands=()
for e in "${engines[@]}"; do
    for n in bridge none; do
        if [[ "$n" == bridge ]]; then c="$(cli "$e") run --rm busybox true"
        else c="$(cli "$e") run --rm --network none busybox true"; fi
        out="$(sh -c "$c" 2>&1)" || fail "$e" "'$c' failed: $out"
        commands+=("$e-$n" "$c")
    done
done
# A container on the bridge really has an address there and reaches its gateway.
for e in "${engines[@]}"; do
    gw="$arca_bip"; [[ "$e" == docker ]] && gw="$docker_bip"
    out="$(client "$e" run --rm busybox sh -c "ip -4 -o addr show eth0 && ping -c 1 -W 2 ${gw%/*} >/dev/null && echo gateway-ok" 2>&1)" ||
        fail "$e" "a bridge container cannot reach its gateway ${gw%/*}: $out"
    log "$e: bridge container: $(echo "$out" | awk '/eth0/ { print $4 }') reaches ${gw%/*}"
done
hf=(hyperfine --warmup "$warmup" --runs "$runs" --export-json "$tmp/start.json" --style basic)
for ((i = 0; i < ${#commands[@]}; i += 2)); do hf+=(--command-name "${commands[i]}" "${commands[i + 1]}"); done
log "1/3 start latency: hyperfine, warmup $warmup, $runs runs per command"
"${hf[@]}" >&2 &
hyperfine_pid=$!
wait "$hyperfine_pid"
hyperfine_pid=""

# ---- 2. connection rate through a published port --------------------------------------
# busybox httpd forks a child per connection and closes after each response (no keep-alive).
declare -A http_port=()
http_page_bytes=1024
for e in "${engines[@]}"; do
    http_port[$e]="$(free_port)"
    client "$e" run -d --name "netbench-httpd-$e" -p "${http_port[$e]}:80" busybox sh -c \
        "mkdir -p /www && yes arca-network-bench | head -c $http_page_bytes >/www/index.html && exec httpd -f -p 80 -h /www" \
        >/dev/null || fail "$e" "cannot start the httpd container"
done
for e in "${engines[@]}"; do
    url="http://127.0.0.1:${http_port[$e]}/index.html"
    ok=0
    for ((i = 0; i < 100; i++)); do
        got="$(curl -fsS --max-time 2 "$url" 2>/dev/null | wc -c)" || got=0
        [[ "$got" -eq "$http_page_bytes" ]] && { ok=1; break; }
        sleep 0.1
    done
    [[ "$ok" -eq 1 ]] || fail "$e" "$url did not serve the page within 10s (port $(client "$e" port "netbench-httpd-$e" 2>&1))"
    log "$e: $url serves $http_page_bytes bytes"
done
if want docker; then
    n="$(pgrep -f "docker-proxy .*-host-port ${http_port[docker]} " | wc -l || true)"
    log "docker: docker-proxy processes for port ${http_port[docker]}: $n (host ips: $(pgrep -af "docker-proxy .*-host-port ${http_port[docker]} " |
        sed -n 's/.*-host-ip \([^ ]*\).*/\1/p' | tr '\n' ' '))"
    record docker proxies "$n"
fi
if want arca; then
    # arcad holds the port with a bound socket that does not listen; DNAT does the rest.
    n="$(ss -Hltn "sport = :${http_port[arca]}" | wc -l || true)"
    log "arca: host sockets listening on port ${http_port[arca]}: $n"
    record arca listeners "$n"
fi
log "2/3 connection rate: wrk -t1 -c$connections -d${conn_seconds}s -H 'Connection: close', $conn_rounds rounds, engines alternating"
for ((r = 1; r <= conn_rounds; r++)); do
    for e in "${engines[@]}"; do
        out="$(wrk -t 1 -c "$connections" -d "${conn_seconds}s" --timeout 5s -H 'Connection: close' \
            "http://127.0.0.1:${http_port[$e]}/index.html" 2>&1)" || fail "$e" "wrk failed: $out"
        rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
        total="$(awk '/requests in/ { print $1 }' <<<"$out")"
        errs="$(awk '/Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n + 0 }' <<<"$out")"
        non2xx="$(awk '/Non-2xx/ { print $NF }' <<<"$out")"
        [[ -n "$rps" ]] || fail "$e" "cannot read wrk's output: $out"
        log "$e: round $r: $rps req/s ($total requests, socket errors ${errs:-0}, non-2xx ${non2xx:-0})"
        record "$e" rps "$rps"
        record "$e" conn_errors "$(( ${errs:-0} + ${non2xx:-0} ))"
    done
done
for e in "${engines[@]}"; do client "$e" rm -f "netbench-httpd-$e" >/dev/null; done

# ---- 3. throughput through a published port -------------------------------------------
# The server: busybox nc accepts one connection and execs dd on it, which reads it in 1 MiB
# reads into /dev/null (nc's own copy loop, 8 KiB reads and a select each, tops out at about
# 400 MB/s here: it would hide the path) and exits at the stream's end, which closes the
# connection: the client's clock stops when the server has read every byte. The container
# then stays up (sleep) for the received-bytes check.
log "3/3 throughput: $stream_mb MiB per stream, $stream_runs runs, engines alternating"
for ((r = 1; r <= stream_runs; r++)); do
    for e in "${engines[@]}"; do
        port="$(free_port)"
        cid="$(client "$e" run -d -p "$port:5001" busybox sh -c \
            'nc -l -p 5001 -e dd of=/dev/null bs=1M; exec sleep 100000')" || fail "$e" "cannot start the nc container"
        ok=0
        for ((i = 0; i < 100; i++)); do
            client "$e" exec "$cid" sh -c 'netstat -ltn | grep -q ":5001 "' 2>/dev/null && { ok=1; break; }
            sleep 0.1
        done
        [[ "$ok" -eq 1 ]] || fail "$e" "nc in $cid did not listen within 10s"
        secs="$(python3 - "$port" "$stream_mb" <<'PY'
import socket, sys, time
port, mib = int(sys.argv[1]), int(sys.argv[2])
buf = memoryview(bytes(1 << 20))
t0 = time.perf_counter()
s = socket.create_connection(("127.0.0.1", port), timeout=60)
for _ in range(mib):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(f"{time.perf_counter() - t0:.6f}")
PY
)" || fail "$e" "the stream to 127.0.0.1:$port failed"
        # The server's network namespace received at least the stream (IP bytes, headers too).
        rx="$(client "$e" exec "$cid" cat /proc/net/netstat 2>&1 | awk '/^IpExt:/ {
            if (n++) { for (i = 1; i <= NF; i++) if (h[i] == "InOctets") print $i; exit }
            for (i = 1; i <= NF; i++) h[i] = $i }' || true)"
        [[ -n "$rx" && "$rx" -ge $((stream_mb << 20)) ]] ||
            fail "$e" "the server's namespace received ${rx:-?} bytes, fewer than the $((stream_mb << 20)) sent ($(client "$e" ps -a 2>&1))"
        client "$e" rm -f "$cid" >/dev/null
        mbps="$(awk -v s="$secs" -v m="$stream_mb" 'BEGIN { printf "%.1f", m * 1048576 / s / 1e6 }')"
        log "$e: run $r: $stream_mb MiB in ${secs}s = $mbps MB/s"
        record "$e" stream_mbps "$mbps"
    done
done

# ---- report ---------------------------------------------------------------------------
python3 - "$tmp/start.json" "$results" "$strict" <<'PY'
import json, statistics, sys
start = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
vals = {}
for line in open(sys.argv[2]):
    e, m, v = line.split()
    vals.setdefault((e, m), []).append(float(v))
strict = sys.argv[3] == "1"
ms = lambda s: s * 1000.0
med = lambda e, m: statistics.median(vals[(e, m)]) if (e, m) in vals else None
engines = [e for e in ("arca", "docker") if f"{e}-none" in start]

print()
print("start latency (ms; `run --rm busybox true`, hyperfine)")
print(f"{'command':<14} {'median':>8} {'mean':>8} {'stddev':>7} {'min':>7} {'max':>7} {'runs':>5}")
for e in engines:
    for n in ("bridge", "none"):
        r = start[f"{e}-{n}"]
        print(f"{e + '-' + n:<14} {ms(r['median']):>8.1f} {ms(r['mean']):>8.1f} {ms(r['stddev'] or 0):>7.1f} "
              f"{ms(r['min']):>7.1f} {ms(r['max']):>7.1f} {len(r['times']):>5}")
m = {k: v["median"] for k, v in start.items()}
for e in engines:
    print(f"  {e}: bridge/none {m[e + '-bridge'] / m[e + '-none']:.2f}x "
          f"(+{ms(m[e + '-bridge'] - m[e + '-none']):.1f} ms for the network)")
if len(engines) == 2:
    for n in ("bridge", "none"):
        print(f"  docker/arca ({n}): {m['docker-' + n] / m['arca-' + n]:.1f}x")

print()
print("published port on 127.0.0.1 (median of the runs)")
print(f"{'engine':<8} {'conn req/s':>11} {'errors':>7} {'stream MB/s':>12}  runs")
for e in engines:
    rps, sm = med(e, "rps"), med(e, "stream_mbps")
    errs = int(sum(vals.get((e, "conn_errors"), [0])))
    runs = f"{' '.join(f'{v:.0f}' for v in vals.get((e, 'rps'), []))} req/s; " \
           f"{' '.join(f'{v:.0f}' for v in vals.get((e, 'stream_mbps'), []))} MB/s"
    print(f"{e:<8} {rps or 0:>11.0f} {errs:>7} {sm or 0:>12.0f}  {runs}")
if len(engines) == 2:
    print(f"  arca/docker: connection rate {med('arca', 'rps') / med('docker', 'rps'):.2f}x, "
          f"throughput {med('arca', 'stream_mbps') / med('docker', 'stream_mbps'):.2f}x")
if ("docker", "proxies") in vals:
    print(f"  docker-proxy processes serving the published port: {int(vals[('docker', 'proxies')][0])}")
if ("arca", "listeners") in vals:
    print(f"  arca: host sockets listening on the published port: {int(vals[('arca', 'listeners')][0])} (nftables DNAT)")

print()
missed = 0
print("goals:")
if "arca" in engines:
    q = m["arca-bridge"] / m["arca-none"]
    ok = q <= 2
    missed += not ok
    print(f"  arca start with networking <= 2x without (bridge/none <= 2): {'MET' if ok else 'MISSED'} ({q:.2f}x)")
if len(engines) == 2:
    a, d = med("arca", "stream_mbps"), med("docker", "stream_mbps")
    ok = a >= d
    missed += not ok
    print(f"  arca port throughput >= dockerd's (arca/docker >= 1): {'MET' if ok else 'MISSED'} ({a / d:.2f}x)")
else:
    print("  arca port throughput >= dockerd's: not measured (needs arca and docker)")
sys.exit(1 if strict and missed else 0)
PY
