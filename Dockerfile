# syntax=docker/dockerfile:1

# The pipeline-export image: one binary that runs the HTTP front (`serve`, the default), the
# background workers (`worker`) or the migrations (`migrate`).
#
#   docker build -t pipeline-export .
#   docker run --rm -e DATABASE_URL=... -e JWT_SECRET=... -e LINK_SECRET=... -p 8080:8080 pipeline-export

# --- build --------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The workspace: the root package, the workers crate, the migrations that `sqlx::migrate!`
# embeds at compile time, and the bench targets the manifest names (Cargo refuses to load a
# manifest whose [[bench]] files are missing). .cargo/config.toml sets SQLX_OFFLINE.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
COPY workers workers
COPY migrations migrations
COPY benches benches

# The caches keep the registry and build output between builds; the binary is copied out of
# the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pipeline-export \
    && cp target/release/pipeline-export /usr/local/bin/pipeline-export

# --- runtime ------------------------------------------------------------------------------
FROM debian:bookworm-slim

# CA certificates for S3 and SMTP over TLS; Droid Sans Fallback for Chinese, Japanese and
# Korean text in PDF reports (/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates fonts-droid-fallback \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --home-dir /var/lib/pipeline-export \
       --create-home --shell /usr/sbin/nologin pipeline

COPY --from=builder /usr/local/bin/pipeline-export /usr/local/bin/pipeline-export

# Without S3_BUCKET / SMTP_URL, files and emails go under the working directory
# (data/exports, data/mail).
WORKDIR /var/lib/pipeline-export
USER 10001:10001

ENV BIND_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json
EXPOSE 8080

# GETs /healthz on METRICS_ADDR's port when it is set (a `worker`), else BIND_ADDR's (`serve`,
# `all`). A `migrate` container, or a worker without METRICS_ADDR, should disable it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["pipeline-export", "healthcheck"]

ENTRYPOINT ["pipeline-export"]
CMD ["serve"]
