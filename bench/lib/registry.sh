# shellcheck shell=bash
# A private Distribution registry for the bench/ scripts (source it after engines.sh and
# call start_registry after engines_init): Debian's docker-registry serving plain HTTP on
# 127.0.0.1 at a free port, its storage under the bench temp dir. stop_registry stops it by
# PID; engines_cleanup would also stop it as a leftover process started against the temp
# dir, but callers register stop_registry in their cleanup hook so it stops first.

# Set by engines.sh: tmp (engines_init), repo_root.
# shellcheck disable=SC2154
registry_bin="${DOCKER_REGISTRY:-/usr/bin/docker-registry}"
registry_pid="" registry_host=""

require_registry() {
    [[ -x "$registry_bin" ]] || die "docker-registry is missing; install with: apt-get install -y docker-registry"
}

# free_port: a TCP port nothing listens on now (the registry could lose it to another
# process before binding it: start_registry retries).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_registry: sets registry_pid and registry_host (127.0.0.1:PORT).
start_registry() {
    local attempt port dir="$tmp/registry"
    mkdir -p "$dir/data"
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
        log "starting docker-registry on 127.0.0.1:$port"
        "$registry_bin" serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
        registry_pid=$!
        registry_host="127.0.0.1:$port"
        if python3 "$repo_root/bench/lib/pull_image.py" ping "$registry_host" 20; then
            kill -0 "$registry_pid" 2>/dev/null && return 0
        fi
        stop_pid docker-registry "$registry_pid" 5
        registry_pid=""
        log "docker-registry did not start (attempt $attempt)"
    done
    cat "$dir/registry.log" >&2
    die "docker-registry did not start"
}

stop_registry() {
    stop_pid docker-registry "$registry_pid" 10
    registry_pid=""
}
