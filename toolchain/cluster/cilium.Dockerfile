# Stand-in for quay.io/cilium/cilium (v1.20.2): the agent, cilium-dbg and the CNI plugin built from
# github.com/cilium/cilium, its BPF sources (the agent compiles its datapath at run time) and the scripts of its
# init containers, from the module, on the bookworm base with what cilium-runtime carries for them: clang 19
# (Debian 13's; Cilium wants LLVM 18.1 or later, Debian 12 has 14; 1.20 no longer calls llc), iproute2, iptables,
# ipset, kmod. No Envoy (the L7 proxy is off), no Hubble, no bpftool (only the image's debugging uses it).
# clang compiles the BPF datapath with -nostdinc and never links: the C library headers, GCC's files, libclang
# and LLVM's other tools are removed in the same layer (about 300 MB of the package's 800).
ARG BASE
FROM ${BASE}
RUN echo 'deb http://deb.debian.org/debian trixie main' > /etc/apt/sources.list.d/trixie.list \
 && printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 iptables ipset kmod ca-certificates \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t trixie clang-19 \
 && rm -rf /var/lib/apt/lists/* /usr/lib/gcc /usr/include /usr/lib/x86_64-linux-gnu/libclang-19.so* \
 && find /usr/lib/llvm-19/bin -type f ! -name clang -delete \
 && ln -s /usr/lib/llvm-19/bin/clang /usr/local/bin/clang \
 && clang --version
COPY daemon /usr/bin/cilium-agent
COPY cilium-dbg /usr/bin/cilium-dbg
COPY cilium-cni /opt/cni/bin/cilium-cni
COPY bpf /var/lib/cilium/bpf
COPY init-container.sh install-plugin.sh cni-uninstall.sh /
WORKDIR /home/cilium
