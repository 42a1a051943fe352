# Stand-in for registry.k8s.io/pause: pause.c from the k8s.io/kubernetes module (build/pause/linux), compiled as
# its Makefile does (static, -Os), on an empty root.
ARG BASE
FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ARG VERSION
COPY pause.c /pause.c
RUN gcc -Os -Wall -Werror -static -DVERSION=${VERSION} -o /pause /pause.c && strip /pause
FROM scratch
COPY --from=build /pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
