#!/bin/sh
# Same contract as docker:dind's entry point with DOCKER_TLS_CERTDIR empty: no arguments, or flags only,
# start dockerd on the unix socket and on tcp://0.0.0.0:2375 without TLS; anything else is run as a command.
set -e
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 "$@"
fi
exec "$@"
