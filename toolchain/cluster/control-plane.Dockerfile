# Stand-in for registry.k8s.io/kube-apiserver, kube-controller-manager and kube-scheduler: the binary built from
# k8s.io/kubernetes (static, CGO_ENABLED=0) on an empty root, as the official distroless images carry little
# else. kubeadm's static pod manifests name the command, so no ENTRYPOINT is needed.
FROM scratch
ARG BINARY
COPY ${BINARY} /usr/local/bin/${BINARY}
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
