# syntax=docker/dockerfile:1
#
# The Holdline gateway image. Build from the repository root (the build context must hold the whole
# Cargo workspace):
#
#   docker build -f deploy/docker/gateway.Dockerfile -t holdline/gateway:dev .
#
# BuildKit (the default builder since Docker 23) reads gateway.Dockerfile.dockerignore next to this
# file, so the repository root needs no .dockerignore of its own.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the target directory between builds, so a code change
# recompiles only the workspace crates. The binary is copied out in the same step because the
# target directory is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p holdline-gateway --bin gateway \
    && install -D -m 0755 target/release/gateway /out/gateway

# distroless/cc carries glibc, libgcc and the CA certificates and nothing else: no shell, no package
# manager. Its "nonroot" variant runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/gateway /usr/local/bin/gateway
USER 65532:65532
# 8080: client traffic. 9901: admin (/healthz, /readyz, /metrics).
EXPOSE 8080 9901
# The gateway drains on SIGTERM (the default stop signal) and reloads its config on SIGHUP.
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["--config", "/etc/holdline/gateway.toml"]
