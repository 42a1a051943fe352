# Stand-in for kindest/node: the base stand-in plus kubeadm, kubelet and kubectl built from k8s.io/kubernetes, and
# the images a cluster needs at creation (control plane, kube-proxy, pause, etcd, CoreDNS, the storage
# provisioner) loaded into containerd's k8s.io namespace, as `kind build node-image` does; kind's storage manifest
# names the local provisioner images. Offline, kind's own builder cannot be used: it pulls kindnetd and the
# storage images, which nothing here can build under those names.
ARG BASE
FROM ${BASE}
COPY kubeadm kubelet kubectl /usr/bin/
COPY version /kind/version
COPY default-storage.yaml /kind/manifests/default-storage.yaml
# kind applies this manifest when it creates a cluster whose configuration leaves the default CNI on: Cilium's.
COPY default-cni.yaml /kind/manifests/default-cni.yaml
COPY images.tar retag.txt /kind/import/
# containerd serves only the content store here: --no-unpack needs no snapshotter or mounts.
RUN set -e; \
    containerd --log-level error >/dev/null 2>&1 & pid=$!; \
    for i in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done; \
    ctr -n k8s.io images import --label=io.cri-containerd.pinned=pinned --no-unpack --all-platforms /kind/import/images.tar; \
    while read -r from to; do \
        ctr -n k8s.io images tag --force "$from" "$to" && ctr -n k8s.io images rm "$from"; \
    done < /kind/import/retag.txt; \
    ctr -n k8s.io images ls -q; \
    kill "$pid"; wait "$pid" || true; \
    rm -rf /kind/import /run/containerd
