# syntax=docker/dockerfile:1
#
# An image for a service built on the Holdline SDK; by default the example echo service. Build from
# the repository root (the build context must hold the whole Cargo workspace):
#
#   docker build -f deploy/docker/service.Dockerfile -t holdline/example-echo:dev .
#
# Another example or your own service in this workspace, by package and binary name:
#
#   docker build -f deploy/docker/service.Dockerfile \
#     --build-arg PACKAGE=example-redact --build-arg BIN=example-redact \
#     -t holdline/example-redact:dev .
#
# BuildKit reads service.Dockerfile.dockerignore next to this file.

FROM rust:1.95-bookworm AS builder
ARG PACKAGE=example-echo
ARG BIN=example-echo
WORKDIR /src
COPY . .
# The binary is installed under one fixed name so the runtime stage's ENTRYPOINT, which cannot expand
# build arguments, works for every service.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p "${PACKAGE}" --bin "${BIN}" \
    && install -D -m 0755 "target/release/${BIN}" /out/service

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/service /usr/local/bin/service
USER 65532:65532
# 8080: direct HTTP from the gateway. 9091: admin (/healthz, /readyz, /metrics).
EXPOSE 8080 9091
# SIGTERM (the default stop signal) lets in-flight work finish before the process exits.
ENTRYPOINT ["/usr/local/bin/service"]
# Every service that takes the SDK's shared flags (`holdline_sdk::Args`, as the examples do)
# understands these; the rest comes from the environment: HOLDLINE_REDIS_URL, HOLDLINE_SERVICE,
# HOLDLINE_CONCURRENCY, HOLDLINE_INSTANCE (see docs/service-guide.md).
CMD ["--listen", "0.0.0.0:8080", "--admin", "0.0.0.0:9091"]
