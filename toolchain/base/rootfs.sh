#!/bin/sh
# Makes the root filesystem of the local stand-in for python:3.11-slim: Debian bookworm with python3, venv and pip,
# shaped like the official image wherever a Dockerfile would notice. Usage: rootfs.sh ROOTFS
set -eu
rootfs="$1"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian
# HTTPS may go through a proxy whose CA only the host's bundle holds (pip install from PyPI needs it).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi
# The official image has `python` and `pip` on PATH.
mkdir -p "$rootfs/usr/local/bin"
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
# The official image lets pip install system-wide (`pip install --upgrade pip`); Debian forbids it (PEP 668).
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
# Like the official image: no package lists, so Dockerfiles must run `apt-get update` in both worlds.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
