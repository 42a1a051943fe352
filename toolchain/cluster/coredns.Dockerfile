# Stand-in for registry.k8s.io/coredns/coredns: the release's binary on an empty root, as the official image.
FROM scratch
COPY coredns /coredns
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
