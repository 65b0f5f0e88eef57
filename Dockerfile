# syntax=docker/dockerfile:1
# One image for every role: `docker run IMAGE serve ...`, `... worker ...`,
# `... up`. The builder compiles the dependencies in their own layer (only
# the manifests are copied first), so editing our sources rebuilds only our
# crates; the runtime is Debian slim with the binary, CA certificates and curl
# for the health check, running as an unprivileged user.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
# Dependencies: the manifests and stub crates, built once and cached.
COPY Cargo.toml Cargo.lock ./
COPY search/Cargo.toml search/Cargo.toml
COPY store/Cargo.toml store/Cargo.toml
COPY worker/Cargo.toml worker/Cargo.toml
COPY server/Cargo.toml server/Cargo.toml
RUN for crate in search store worker server; do mkdir -p "$crate/src" && touch "$crate/src/lib.rs"; done \
 && echo 'fn main() {}' > server/src/main.rs \
 && cargo build --release --locked -p server \
 && rm -rf search/src store/src worker/src server/src
# Our sources.
COPY . .
RUN touch search/src/lib.rs store/src/lib.rs worker/src/lib.rs server/src/lib.rs server/src/main.rs \
 && cargo build --release --locked -p server \
 && cp target/release/nas /usr/local/bin/nas

# onnxruntime's shared library, for latency measured in onnxruntime (the
# worker loads it at run time): taken from the onnxruntime wheel on PyPI,
# checked against its SHA-256.
FROM python:3.11-slim-bookworm AS onnxruntime
ARG ORT_VERSION=1.32.0
ARG ORT_WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ARG ORT_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
RUN pip download --no-deps --only-binary=:all: "onnxruntime==${ORT_VERSION}" -d /wheel \
 && echo "${ORT_SHA256}  /wheel/${ORT_WHEEL}" | sha256sum -c - \
 && python -m zipfile -e "/wheel/${ORT_WHEEL}" /ort \
 && cp "/ort/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" /libonnxruntime.so

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/nas nas \
 && mkdir -p /data /run/nas-lock \
 && chown nas:nas /data /run/nas-lock
COPY --from=builder /usr/local/bin/nas /usr/local/bin/nas
COPY --from=onnxruntime /libonnxruntime.so /usr/local/lib/libonnxruntime.so
# Workers load it, so searches measured in onnxruntime can run on them.
ENV NAS_ONNXRUNTIME=/usr/local/lib/libonnxruntime.so
USER nas
WORKDIR /home/nas
# Datasets are downloaded (and checked) here on first use; mount a volume.
ENV NAS_DATA_DIR=/data
EXPOSE 8080
# For the server role (the compose file turns it off for workers).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/api/v1/healthz || exit 1
ENTRYPOINT ["nas"]
CMD ["--help"]
