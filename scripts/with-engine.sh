#!/usr/bin/env bash
# Runs a command with everything layerbench needs at hand: Debian packages, cargo, and a Docker engine.
# Usage: scripts/with-engine.sh CMD [ARGS...]   (DOCKER_HOST is exported to CMD)
#
# The engine is the first that answers of: $DOCKER_HOST, /var/run/docker.sock, layerbench's private dockerd.
# When none answers, the private dockerd is started (root only) and left running for the next call; its data
# root keeps the toolchain images, so later runs reuse them. Stop it with: kill "$(cat /run/layerbench/docker.pid)"
set -euo pipefail

readonly STATE_DIR=/var/lib/layerbench
readonly RUN_DIR=/run/layerbench
readonly DATA_ROOT=$STATE_DIR/docker
readonly LOG=$STATE_DIR/dockerd.log
readonly PIDFILE=$RUN_DIR/docker.pid
readonly EXEC_ROOT=$RUN_DIR/exec
readonly PRIVATE_HOST=unix://$RUN_DIR/docker.sock
readonly SYSTEM_HOST=unix:///var/run/docker.sock
readonly START_TIMEOUT_S=60
# debootstrap builds the base stand-in; gcc and libc6-dev link the crate; chromium renders the report in the browser
# test; docker.io (Debian 13's, see install_engine) only when no engine exists.
readonly PACKAGES=(debootstrap ca-certificates curl git make gcc libc6-dev chromium)
# Debian 12's docker.io is 20.10: end of life, and on hosts whose capability bounding set lacks a capability it
# cannot run --privileged containers (moby/moby#42906). Debian 13's 26.1 can, and installs on Debian 12 with
# Debian 12's containerd and runc. Only docker.io comes from Debian 13: the pin keeps everything else where it is.
readonly ENGINE_MIN_MAJOR=26
readonly TRIXIE_LIST=/etc/apt/sources.list.d/layerbench-trixie.list
readonly TRIXIE_PIN=/etc/apt/preferences.d/layerbench-trixie

say() { echo "with-engine: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$#" -gt 0 ] || die "usage: scripts/with-engine.sh CMD [ARGS...]"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        installed "$pkg" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed; check the network and /etc/apt/sources.list"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed; run it by hand to see why"
}

# An engine answers when its API's /_ping does. curl reaches unix sockets and plain tcp; TLS and ssh engines
# are left to a docker client when one exists.
answers() {
    local host=$1
    case $host in
        unix://*) curl -fsS --max-time 5 --unix-socket "${host#unix://}" http://localhost/_ping >/dev/null 2>&1 ;;
        tcp://*) if [ -z "${DOCKER_TLS_VERIFY:-}" ]; then
                     curl -fsS --max-time 5 "http://${host#tcp://}/_ping" >/dev/null 2>&1
                 else
                     client_answers "$host"
                 fi ;;
        *) client_answers "$host" ;;
    esac
}

client_answers() {
    command -v docker >/dev/null 2>&1 && DOCKER_HOST=$1 timeout 20 docker version >/dev/null 2>&1
}

dockerd_major() {
    command -v dockerd >/dev/null 2>&1 || { echo 0; return; }
    dockerd --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p' | grep . || echo 0
}

# Installs (or upgrades 20.10 to) Debian 13's docker.io. The data root under $STATE_DIR is kept, images and all.
install_engine() {
    [ "$(dockerd_major)" -ge "$ENGINE_MIN_MAJOR" ] && return 0
    [ "$(id -u)" -eq 0 ] || die "dockerd $ENGINE_MIN_MAJOR+ is needed; as root run: scripts/with-engine.sh true"
    say "installing Debian 13's docker.io (Docker $ENGINE_MIN_MAJOR); nothing else moves to Debian 13"
    trixie_sources
    # Debian's package starts the system dockerd on /var/run/docker.sock; layerbench runs its own private one.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    local rc=0
    # `docker.io/trixie`, not `-t trixie`: the latter would also take libc6, containerd and runc from Debian 13.
    # `docker.io/trixie` alone still took containerd 1.7 from Debian 13 on a machine without containerd (apt
    # resolves a dependency of a `/release` package from that release); naming Debian 12's keeps it at 1.6.
    apt-get install -y -qq --no-install-recommends docker.io/trixie containerd/bookworm runc/bookworm >/dev/null || rc=$?
    rm -f /usr/sbin/policy-rc.d
    [ "$rc" -eq 0 ] || die "apt-get install docker.io/trixie failed; run it by hand to see why"
    [ "$(dockerd_major)" -ge "$ENGINE_MIN_MAJOR" ] || die "dockerd is still $(dockerd --version); expected $ENGINE_MIN_MAJOR or later"
}

# Debian 13's packages, pinned below Debian 12's: only what is named `PKG/trixie` comes from there.
trixie_sources() {
    echo "deb http://deb.debian.org/debian trixie main" >"$TRIXIE_LIST"
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$TRIXIE_PIN"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed; check the network and $TRIXIE_LIST"
}

# kind drives the engine through the `docker` CLI (`layerbench cluster up`); Debian 13's docker.io has none.
install_docker_cli() {
    command -v docker >/dev/null 2>&1 && return 0
    [ "$(id -u)" -eq 0 ] || die "the docker CLI is missing (kind needs it); as root run: scripts/with-engine.sh true"
    say "installing Debian 13's docker-cli (kind drives the engine through it)"
    trixie_sources
    apt-get install -y -qq --no-install-recommends docker-cli/trixie >/dev/null \
        || die "apt-get install docker-cli/trixie failed; run it by hand to see why"
}

private_dockerd_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "dockerd.*$DATA_ROOT" \
        && echo "$pid"
}

start_private_dockerd() {
    [ "$(id -u)" -eq 0 ] || die "no Docker engine answers at DOCKER_HOST or $SYSTEM_HOST, and starting one needs root"
    local pid log_start=0
    if pid=$(private_dockerd_pid) && [ "$(dockerd_major)" -lt "$ENGINE_MIN_MAJOR" ]; then
        say "stopping the private dockerd (pid $pid, $(dockerd --version)) to upgrade it; its data root is kept"
        kill "$pid"
        local waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 30 ]; do sleep 1; waited=$((waited + 1)); done
    fi
    install_engine
    if pid=$(private_dockerd_pid); then
        say "waiting for the private dockerd already starting (pid $pid)"
    else
        mkdir -p "$STATE_DIR" "$RUN_DIR" "$EXEC_ROOT"
        # A dockerd that died leaves its pidfile and socket behind, and refuses to start over them.
        rm -f "$PIDFILE" "${PRIVATE_HOST#unix://}"
        echo "--- $(date -Is) started by scripts/with-engine.sh" >>"$LOG"
        log_start=$(wc -l <"$LOG")
        # Its own session, so Ctrl-C in the terminal that started it does not stop it.
        setsid dockerd --data-root "$DATA_ROOT" --host "$PRIVATE_HOST" --pidfile "$PIDFILE" --exec-root "$EXEC_ROOT" \
            </dev/null >>"$LOG" 2>&1 &
        pid=$!
        say "starting a private dockerd (pid $pid, data root $DATA_ROOT, log $LOG)"
    fi
    local deadline=$((SECONDS + START_TIMEOUT_S)) started=$SECONDS
    until answers "$PRIVATE_HOST"; do
        if ! kill -0 "$pid" 2>/dev/null && ! private_dockerd_pid >/dev/null; then
            die "dockerd exited during start-up; see $LOG: $(tail -n +"$((log_start + 1))" "$LOG" | tail -n 3 | tr '\n' ' ')"
        fi
        [ "$SECONDS" -ge "$deadline" ] && die "dockerd (pid $pid) did not answer within ${START_TIMEOUT_S} s; see $LOG"
        sleep 1
    done
    say "private dockerd answers after $((SECONDS - started)) s"
}

install_missing "${PACKAGES[@]}"
install_docker_cli

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || die "cargo not found; install Rust from https://rustup.rs (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), then re-run"
    export PATH="$HOME/.cargo/bin:$PATH"
fi

if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then
    engine=$DOCKER_HOST
else
    if [ -n "${DOCKER_HOST:-}" ]; then say "DOCKER_HOST=$DOCKER_HOST does not answer; looking for another engine"; fi
    if answers "$SYSTEM_HOST"; then
        engine=$SYSTEM_HOST
    elif answers "$PRIVATE_HOST" && [ "$(dockerd_major)" -ge "$ENGINE_MIN_MAJOR" ]; then
        engine=$PRIVATE_HOST
    else
        start_private_dockerd
        engine=$PRIVATE_HOST
    fi
    if [ -n "${DOCKER_HOST:-}" ]; then say "using $engine"; fi
fi
export DOCKER_HOST=$engine
exec "$@"
