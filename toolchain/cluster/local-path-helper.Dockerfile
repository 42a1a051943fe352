# The helper image local-path-provisioner runs to create and remove volume directories (`sh`, `mkdir`, `rm`,
# `chmod`): kind stages those from Debian onto distroless; here Debian's busybox-static provides them.
ARG BASE
FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static \
 && rm -rf /var/lib/apt/lists/*
FROM scratch
COPY --from=build /bin/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
