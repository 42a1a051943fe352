# Stand-in for kindest/base (kind v0.33.0's images/base): kind's own files (entrypoint, systemd units, containerd
# config; copied from the sigs.k8s.io/kind module into files/) on the bookworm base, with the packages kind's
# Dockerfile installs. Differences from kind's image, where kind builds from source and nothing here can fetch it:
# - containerd 1.7.24 and runc 1.1.15 from Debian 13 instead of containerd 2.3 and runc 1.4 (kind's config.toml is
#   containerd's version 2 format, which 1.7 reads; Kubernetes 1.34 supports containerd 1.7);
# - the CNI plugins are Debian's containernetworking-plugins 1.1, linked into /opt/cni/bin;
# - crictl is built from sigs.k8s.io/cri-tools; no fuse-overlayfs snapshotter (only rootless nodes need it);
# - the sandbox image is pause 3.10.1, the one kubeadm 1.34 names and layerbench builds;
# - no CNI configuration: the node image's Cilium writes one on each node (kindnetd's module is not served);
# - containerd's `restrict_oom_score_adj = true`: these machines' capability bounding set lacks SYS_RESOURCE, so
#   no container here may lower its oom_score_adj, and runc fails every pod sandbox (kubelet asks -998) with
#   "can't get final child's PID from pipe: EOF" otherwise. containerd then keeps each container's score at or
#   above its own (0), as for rootless nodes.
ARG BASE
FROM ${BASE}
# Packages first: kind's files replace the containerd package's config and unit, which its postinst must not meet.
RUN echo 'deb http://deb.debian.org/debian trixie main' > /etc/apt/sources.list.d/trixie.list \
 && printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      systemd dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz \
      fuse-overlayfs e2fsprogs bash ca-certificates curl jq procps \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t trixie \
      containerd runc containernetworking-plugins \
 && rm -rf /var/lib/apt/lists/* \
 && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
 && rm -f /lib/systemd/system/multi-user.target.wants/* \
 && rm -f /etc/systemd/system/*.wants/* \
 && rm -f /lib/systemd/system/local-fs.target.wants/* \
 && rm -f /lib/systemd/system/sockets.target.wants/*udev* \
 && rm -f /lib/systemd/system/sockets.target.wants/*initctl* \
 && rm -f /lib/systemd/system/basic.target.wants/* \
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
 && ln -sf /usr/lib/systemd/systemd /sbin/init
COPY files/ /
RUN systemctl enable kubelet.service \
 && systemctl enable containerd.service \
 && systemctl enable undo-mount-hacks.service \
 && systemctl mask systemd-binfmt.service \
 && mkdir -p /etc/kubernetes/manifests /opt/cni/bin /etc/cni/net.d \
 && ln -sf /usr/bin/containerd /usr/local/bin/containerd \
 && for p in host-local loopback ptp portmap bridge; do ln -sf /usr/lib/cni/$p /opt/cni/bin/$p; done \
 && ctr oci spec \
      | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
      | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
 && sed -i 's#"registry.k8s.io/pause:3.10"#"registry.k8s.io/pause:3.10.1"#' /etc/containerd/config.toml \
 && grep -q 'pause:3.10.1"' /etc/containerd/config.toml \
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \
 && grep -q 'restrict_oom_score_adj = true' /etc/containerd/config.toml \
 && containerd --version && runc --version
COPY crictl /usr/local/bin/crictl
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
