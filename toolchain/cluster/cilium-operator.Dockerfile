# Stand-in for quay.io/cilium/operator-generic (v1.20.2): cilium-operator built from github.com/cilium/cilium with
# the `ipam_provider_operator` tag, as the release's `cilium-operator-generic`, on the bookworm base.
ARG BASE
FROM ${BASE}
COPY operator /usr/bin/cilium-operator-generic
