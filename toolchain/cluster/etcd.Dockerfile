# Stand-in for registry.k8s.io/etcd: etcd built from go.etcd.io/etcd/server/v3 (Go names the binary `server`),
# on an empty root. kubeadm's static pod manifest runs `etcd`.
FROM scratch
COPY server /usr/local/bin/etcd
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
