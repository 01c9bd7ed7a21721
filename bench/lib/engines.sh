# shellcheck shell=bash
# Shared by the bench/ scripts (source it; needs bash). Starts arcad and Debian's dockerd
# (with a containerd of its own) privately under one temp dir and stops everything it
# started, by PID, on exit. By default nothing on the host is reused or changed: no bridge,
# no firewall rule, no ip_forward change (arcad runs with `--bridge none`, dockerd with
# `--bridge none --iptables=false ...`).
#
# The caller sets BENCH (its name, for messages) and may set, before calling engines_init:
# DOCKERD_CONFIG (daemon.json content, default '{}'); arcad_net_args and dockerd_net_args
# (arrays replacing those network defaults: bench/network.sh, which then undoes what the
# engines change on the host, in bench_after_stop_hook).

log() { echo "== $*" >&2; }
die() { echo "${BENCH:-bench}: $*" >&2; exit 1; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fixture="$repo_root/target/fixtures/busybox.tar"
arcad_pid="" dockerd_pid="" containerd_pid="" hyperfine_pid=""
created_cgroups=()
# Host paths dockerd/containerd create whatever their roots are: the shim socket dir, the
# plugin dir, the 20.10 trust key. Removed afterwards if they did not exist before (dirs only
# when empty).
host_paths=(/etc/docker/key.json /etc/docker /run/docker/plugins /run/docker /run/containerd/s /run/containerd)
created_host_paths=()
# Extra cleanup the caller registers (a function name), run before the engines stop, and
# one run after they (and every process started against the temp dir) have stopped.
bench_cleanup_hook=""
bench_after_stop_hook=""
# Network settings of the engines (see the top of this file).
declare -p arcad_net_args >/dev/null 2>&1 || arcad_net_args=(--bridge none)
declare -p dockerd_net_args >/dev/null 2>&1 || dockerd_net_args=(--bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false)

stop_pid() { # stop_pid NAME PID TIMEOUT_SECONDS: SIGTERM, wait (bounded), then SIGKILL
    local name="$1" pid="$2" timeout="$3" i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "${BENCH:-bench}: $name (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

engines_cleanup() {
    local rc=$? pid mnt cg p mnts
    trap - EXIT INT TERM
    set +e
    stop_pid hyperfine "$hyperfine_pid" 5
    [[ -n "$bench_cleanup_hook" ]] && "$bench_cleanup_hook"
    # Containers left in either engine: removed while their daemon still runs.
    if [[ -n "$arcad_pid" ]] && kill -0 "$arcad_pid" 2>/dev/null; then
        mapfile -t ids < <("${arca[@]}" ps -aq 2>/dev/null)
        [[ ${#ids[@]} -gt 0 ]] && "${arca[@]}" rm -f "${ids[@]}" >/dev/null 2>&1
    fi
    if [[ -n "$dockerd_pid" ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
        mapfile -t ids < <("${dk[@]}" ps -aq 2>/dev/null)
        [[ ${#ids[@]} -gt 0 ]] && "${dk[@]}" rm -f "${ids[@]}" >/dev/null 2>&1
    fi
    stop_pid arcad "$arcad_pid" 10
    stop_pid dockerd "$dockerd_pid" 20
    stop_pid containerd "$containerd_pid" 10
    # Anything else still running that was started against our temp dir (shims).
    # shellcheck disable=SC2013 # grep -l prints file names, one per line
    for pid in $(grep -lsF -- "$tmp" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
        [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
        stop_pid "leftover process" "$pid" 5
    done
    [[ -n "$bench_after_stop_hook" ]] && "$bench_after_stop_hook"
    # Unmount everything under the temp dir, deepest first.
    for _ in 1 2 3; do
        mnts="$(awk -v t="$tmp" '{ m = $5; gsub(/\\040/, " ", m); if (m == t || index(m, t "/") == 1) print m }' \
            /proc/self/mountinfo | sort -r)"
        [[ -z "$mnts" ]] && break
        while IFS= read -r mnt; do
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
        done <<<"$mnts"
    done
    # Parent cgroups the engines created and that are empty now.
    for cg in "${created_cgroups[@]}"; do rmdir "$cg" 2>/dev/null; done
    for p in "${created_host_paths[@]}"; do
        if [[ -d "$p" && ! -L "$p" ]]; then rmdir "$p" 2>/dev/null; else rm -f "$p"; fi
    done
    rm -rf --one-file-system "$tmp"
    exit "$rc"
}

# engines_init: root check, temp dir, traps, the busybox fixture.
engines_init() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (containers need privileges)"
    tmp="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/arca-bench.XXXXXX")"
    chmod 0711 "$tmp"
    trap engines_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # Remember which parent cgroups do not exist yet, to remove them if left empty.
    while IFS= read -r mp; do
        for name in docker arca; do [[ -e "$mp/$name" ]] || created_cgroups+=("$mp/$name"); done
    done < <(awk '$0 ~ / - cgroup2? / { print $5 }' /proc/self/mountinfo)
    if [[ ! -f "$fixture" ]]; then
        log "building busybox fixture"
        "$repo_root/fixtures/build-busybox.sh" "$fixture" busybox:latest >/dev/null
    fi
}

# require_docker: checks dockerd, containerd and picks the client that ships with dockerd.
require_docker() {
    local install_hint="apt-get install -y docker.io"
    command -v dockerd >/dev/null || die "dockerd is missing; install with: $install_hint"
    command -v containerd >/dev/null || die "containerd is missing; install with: $install_hint"
    docker_cli="${DOCKER:-}"
    if [[ -z "$docker_cli" ]]; then
        if [[ -x /usr/bin/docker ]]; then docker_cli=/usr/bin/docker
        else docker_cli="$(command -v docker || true)"; fi
        [[ -n "$docker_cli" ]] || die "no docker client found; install with: $install_hint"
    fi
}

# build_arca NO_BUILD: makes sure target/release has arca, arcad, arca-shim (and arca-init).
build_arca() {
    rel="$repo_root/target/release"
    if [[ ! -x "$rel/arca" || ! -x "$rel/arcad" || ! -x "$rel/arca-shim" ]]; then
        [[ "${1:-1}" -eq 1 ]] || die "arca is not built ($rel/{arca,arcad,arca-shim}); run: cargo build --release -p arca"
        log "building arca (cargo build --release -p arca)"
        (cd "$repo_root" && cargo build --release --locked -p arca) || die "arca failed to build"
    fi
}

# start_arcad: a private arcad from target/release; sets arcad_pid, arca_sock, arca=(client).
# Its --root and --exec-root are $arca_root and $arca_exec_root if set.
start_arcad() {
    arca_sock="$tmp/arca.sock"
    arca=("$rel/arca" -H "unix://$arca_sock")
    log "starting arcad on unix://$arca_sock"
    "$rel/arcad" --host "unix://$arca_sock" --root "${arca_root:-$tmp/arca-root}" \
        --exec-root "${arca_exec_root:-$tmp/arca-run}" "${arcad_net_args[@]}" \
        >>"$tmp/arcad.log" 2>&1 &
    arcad_pid=$!
    local i
    for ((i = 0; i < 1000; i++)); do
        [[ -S "$arca_sock" ]] && "${arca[@]}" version >/dev/null 2>&1 && return 0
        kill -0 "$arcad_pid" 2>/dev/null || { cat "$tmp/arcad.log" >&2; die "arcad exited during startup"; }
        sleep 0.01
    done
    cat "$tmp/arcad.log" >&2
    die "arcad did not answer on $arca_sock within 10s"
}

# start_containerd: a dedicated containerd (left alone, dockerd would attach to a system
# containerd at /run/containerd/containerd.sock if one is running).
start_containerd() {
    local p i
    for p in "${host_paths[@]}"; do [[ -e "$p" ]] || created_host_paths+=("$p"); done
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
}

# start_dockerd: Debian's dockerd on its own socket, roots and containerd; sets dockerd_pid
# and dk=(client). Needs start_containerd first. Its --data-root is $docker_data if set.
start_dockerd() {
    local i
    docker_sock="$tmp/docker.sock"
    echo "${DOCKERD_CONFIG:-{\}}" >"$tmp/daemon.json"
    log "starting dockerd on unix://$docker_sock"
    dockerd -H "unix://$docker_sock" --config-file "$tmp/daemon.json" \
        --containerd "$tmp/containerd.sock" \
        --data-root "${docker_data:-$tmp/docker-data}" --exec-root "$tmp/docker-exec" --pidfile "$tmp/docker.pid" \
        "${dockerd_net_args[@]}" --log-level warn >>"$tmp/dockerd.log" 2>&1 &
    dockerd_pid=$!
    export DOCKER_CONFIG="$tmp/docker-cli-config"
    dk=("$docker_cli" -H "unix://$docker_sock")
    for ((i = 0; i < 3000; i++)); do
        "${dk[@]}" version >/dev/null 2>&1 && return 0
        kill -0 "$dockerd_pid" 2>/dev/null || { cat "$tmp/dockerd.log" >&2; die "dockerd exited during startup"; }
        sleep 0.01
    done
    cat "$tmp/dockerd.log" >&2
    die "dockerd did not answer within 30s"
}

# rss_kb PID / pss_kb PID: from /proc/PID/smaps_rollup (0 if the process is gone).
rss_kb() { awk '/^Rss:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# now_ms: monotonic-enough wall clock in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
