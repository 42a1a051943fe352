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
# test; docker.io only when no engine exists.
readonly PACKAGES=(debootstrap ca-certificates curl git make gcc libc6-dev chromium)

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

private_dockerd_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "dockerd.*$DATA_ROOT" \
        && echo "$pid"
}

start_private_dockerd() {
    [ "$(id -u)" -eq 0 ] || die "no Docker engine answers at DOCKER_HOST or $SYSTEM_HOST, and starting one needs root"
    command -v dockerd >/dev/null 2>&1 || install_missing docker.io
    local pid log_start=0
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
    elif answers "$PRIVATE_HOST"; then
        engine=$PRIVATE_HOST
    else
        start_private_dockerd
        engine=$PRIVATE_HOST
    fi
    if [ -n "${DOCKER_HOST:-}" ]; then say "using $engine"; fi
fi
export DOCKER_HOST=$engine
exec "$@"
