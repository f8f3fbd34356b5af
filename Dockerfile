# syntax=docker/dockerfile:1
# Nestor's server image: `nestor serve` with the bundled engines.
#
#   scripts/build-image.sh              # podman, buildah or docker
#   docker run --rm -p 8080:8080 nestor:dev
#
# Two stages: the build stage compiles `nestor` (and, through
# nestor-engines' build script, the bundled engines for wasm32-wasip2);
# the runtime stage holds the binary, CA certificates and the OpenSSL
# library libgit2 uses for HTTPS remotes, and runs as an unprivileged user.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev git \
 && rm -rf /var/lib/apt/lists/*
# rust-toolchain.toml pins the same toolchain; the target is not installed
# by rustup inside images.
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p nestor-server \
 && install -D -m 0755 target/release/nestor /out/nestor \
 && /out/nestor completions bash > /out/nestor.bash \
 && /out/nestor man > /out/nestor.1

FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 nestor \
 && useradd --uid 10001 --gid nestor --home-dir /var/lib/nestor --create-home --shell /usr/sbin/nologin nestor \
 && mkdir -p /etc/nestor
COPY --from=build /out/nestor /usr/local/bin/nestor
COPY --from=build /out/nestor.bash /usr/share/bash-completion/completions/nestor
COPY --from=build /out/nestor.1 /usr/share/man/man1/nestor.1
USER 10001:10001
WORKDIR /var/lib/nestor
ENV HOME=/var/lib/nestor \
    NESTOR_DATA_DIR=/var/lib/nestor \
    NESTOR_SERVER__LISTEN=0.0.0.0:8080
VOLUME ["/var/lib/nestor"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/nestor"]
CMD ["serve"]
