#!/bin/sh
# Same contract as registry:3's entry point: a config file, or a registry subcommand, runs the registry.
set -e
case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
