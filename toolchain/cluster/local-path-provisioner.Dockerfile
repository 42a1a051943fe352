# The provisioner behind kind's default StorageClass (`standard`), built from github.com/rancher/local-path-provisioner
# on an empty root, as kind's own image (distroless static).
FROM scratch
COPY local-path-provisioner /usr/local/bin/local-path-provisioner
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]
