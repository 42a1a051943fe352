# Stand-in for quay.io/cilium/cilium (v1.20.2): the agent, cilium-dbg and the CNI plugin built from
# github.com/cilium/cilium, its BPF sources (the agent compiles its datapath at run time) and the scripts of its
# init containers, from the module, on the bookworm base with what cilium-runtime carries for them: clang and
# llc 19 (Debian 13's; Cilium wants LLVM 18.1 or later, Debian 12 has 14), iproute2, iptables, ipset, kmod.
# No Envoy (the L7 proxy is off), no Hubble, no bpftool (only the image's debugging uses it).
ARG BASE
FROM ${BASE}
RUN echo 'deb http://deb.debian.org/debian trixie main' > /etc/apt/sources.list.d/trixie.list \
 && printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 iptables ipset kmod ca-certificates \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t trixie clang-19 llvm-19 \
 && ln -s /usr/bin/clang-19 /usr/local/bin/clang && ln -s /usr/bin/llc-19 /usr/local/bin/llc \
 && rm -rf /var/lib/apt/lists/*
COPY daemon /usr/bin/cilium-agent
COPY cilium-dbg /usr/bin/cilium-dbg
COPY cilium-cni /opt/cni/bin/cilium-cni
COPY bpf /var/lib/cilium/bpf
COPY init-container.sh install-plugin.sh cni-uninstall.sh /
WORKDIR /home/cilium
