#!/usr/bin/env bash
# Build and install arca on a Debian/Ubuntu machine, then start arcad. Run as root from a
# checkout of the repository:
#
#   ./install.sh [--no-build] [--prefix DIR]
#
#   --no-build    install the binaries already in target/release
#   --prefix DIR  install into DIR/bin (default /usr/local)
#
# Idempotent: re-running rebuilds, replaces the binaries and restarts arcad with them
# (running containers keep running: their arca-shim processes survive the restart).
# With systemd as init, arcad runs as the arcad.service unit; otherwise it is started in the
# background (log: /var/log/arcad.log, pid file: /run/arca/arcad.pid).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix=/usr/local
build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) build=0; shift ;;
        --prefix) prefix="$2"; shift 2 ;;
        -h|--help) sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

sock_path=/run/arca/arca.sock
host="unix://$sock_path"
exec_root=/run/arca
data_root=/var/lib/arca
pidfile=/run/arca/arcad.pid
logfile=/var/log/arcad.log
bindir="$prefix/bin"
bins=(arca arcad arca-shim arca-init)
min_rust=1.85

say() { echo "==> $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (e.g. sudo ./install.sh)"

# ---- packages ---------------------------------------------------------------------------
# Build: gcc, libc6-dev, pkg-config, libseccomp-dev. Runtime: libseccomp2, nftables and
# iproute2 (bridge networking). Test fixture: busybox-static.
pkgs=(gcc libc6-dev pkg-config libseccomp-dev libseccomp2 nftables iproute2 busybox-static ca-certificates)
if command -v dpkg-query >/dev/null; then
    missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "installing packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        say "packages present: ${pkgs[*]}"
    fi
else
    echo "install.sh: not a Debian/Ubuntu system; make sure these (or equivalents) are installed: ${pkgs[*]}" >&2
fi

# ---- build ------------------------------------------------------------------------------
if [[ $build -eq 1 ]]; then
    # Under sudo, build as the invoking user (their toolchain, their target/ directory);
    # otherwise as root.
    builder=(env)
    build_home="$HOME"
    build_user=root
    if [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root && "$(stat -c %U "$repo_root")" == "$SUDO_USER" ]]; then
        build_home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
        builder=(runuser -u "$SUDO_USER" -- env "HOME=$build_home")
        build_user="$SUDO_USER"
    fi
    build_path="$build_home/.cargo/bin:$PATH"
    if ! "${builder[@]}" "PATH=$build_path" cargo --version >/dev/null 2>&1; then
        die "cargo not found. Install Rust >= $min_rust with rustup (https://rustup.rs), then re-run.
Debian 12's own 'cargo' package (Rust 1.63) is too old for this workspace (edition 2024)."
    fi
    have="$("${builder[@]}" "PATH=$build_path" rustc --version | awk '{print $2}')"
    if [[ "$(printf '%s\n%s\n' "$min_rust" "$have" | sort -V | head -n1)" != "$min_rust" ]]; then
        die "rustc $have is too old; arca needs >= $min_rust (rustup update stable)"
    fi
    say "building (cargo build --release --locked -p arca, rustc $have, as $build_user)"
    (cd "$repo_root" && "${builder[@]}" "PATH=$build_path" cargo build --release --locked -p arca)
fi
for b in "${bins[@]}"; do
    [[ -x "$repo_root/target/release/$b" ]] || die "target/release/$b missing; build first (or drop --no-build)"
done

# ---- install binaries (atomic rename: running processes keep the old inode) -------------
say "installing ${bins[*]} into $bindir"
install -d -m 0755 "$bindir"
for b in "${bins[@]}"; do
    install -m 0755 "$repo_root/target/release/$b" "$bindir/.$b.new"
    mv -f "$bindir/.$b.new" "$bindir/$b"
done

answering() { [[ -S "$sock_path" ]] && "$bindir/arca" -H "$host" version >/dev/null 2>&1; }

wait_for_socket() {
    local i
    for ((i = 0; i < 50; i++)); do
        answering && return 0
        sleep 0.1
    done
    return 1
}

# Stop an arcad we started earlier (pid file), gracefully: SIGTERM, then wait up to 30 s.
stop_old_arcad() {
    [[ -f "$pidfile" ]] || return 0
    local pid i
    pid="$(tr -dc '0-9' <"$pidfile")"
    if [[ -z "$pid" || ! -d "/proc/$pid" || "$(cat "/proc/$pid/comm" 2>/dev/null)" != arcad ]]; then
        rm -f "$pidfile"   # stale
        return 0
    fi
    say "stopping arcad (pid $pid)"
    kill -TERM "$pid"
    for ((i = 0; i < 300; i++)); do
        [[ -d "/proc/$pid" ]] || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    die "arcad (pid $pid) did not exit within 30 s of SIGTERM; stop it and re-run"
}

# ---- run arcad ----------------------------------------------------------------------------
if [[ -d /run/systemd/system ]]; then
    unit=/etc/systemd/system/arcad.service
    stop_old_arcad   # one started by an earlier non-systemd install
    say "installing $unit"
    sed "s|/usr/local/bin/arcad|$bindir/arcad|" "$repo_root/packaging/arcad.service" >"$unit.new"
    chmod 0644 "$unit.new"
    mv -f "$unit.new" "$unit"
    systemctl daemon-reload
    systemctl enable arcad.service
    say "(re)starting arcad.service"
    systemctl restart arcad.service
    if ! wait_for_socket; then
        systemctl --no-pager status arcad.service >&2 || true
        die "arcad did not answer on $sock_path within 5 s (journalctl -u arcad)"
    fi
else
    if answering && [[ ! -f "$pidfile" ]]; then
        say "an arcad not started by this script is answering on $sock_path; leaving it running"
        say "(restart it yourself to use the new binaries)"
    else
        stop_old_arcad
        if answering; then
            say "arcad is answering on $sock_path; leaving it running"
        else
            say "starting arcad in the background (log: $logfile)"
            install -d -m 0711 "$exec_root"
            install -d -m 0711 "$data_root"
            # setsid: own session, so the terminal's hangup or Ctrl-C does not reach it.
            nohup setsid "$bindir/arcad" --host "$host" --root "$data_root" --exec-root "$exec_root" \
                </dev/null >>"$logfile" 2>&1 &
            pid=$!
            if ! wait_for_socket; then
                tail -n 20 "$logfile" >&2 || true
                kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
                die "arcad did not answer on $sock_path within 5 s (log: $logfile)"
            fi
            # arcad may write its own pid file; make sure there is one for the next run.
            [[ -f "$pidfile" ]] || echo "$pid" >"$pidfile"
        fi
    fi
fi

say "arca $("$bindir/arca" --version 2>/dev/null | awk '{print $2}') is installed and arcad is answering on $host"
echo
echo "now run: arca run hello-world"
echo "  (offline: fixtures/build-busybox.sh && arca load -i target/fixtures/busybox.tar && arca run --rm busybox echo hi)"
echo "  Docker clients work too: DOCKER_HOST=$host docker ps"
