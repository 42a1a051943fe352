# Stand-in for registry.k8s.io/kube-proxy: the binary built from k8s.io/kubernetes on the bookworm base with what
# the official image (distroless-iptables) carries for it: iptables and ip6tables (nft and legacy), ipset,
# conntrack, kmod.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables ipset conntrack kmod \
 && rm -rf /var/lib/apt/lists/*
COPY kube-proxy /usr/local/bin/kube-proxy
