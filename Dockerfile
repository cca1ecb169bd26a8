# cx-webhook container image: built with Rust on Debian bookworm, run on distroless cc-debian12 as
# the nonroot user (uid 65532), with the demo database baked in.
#
# The builder and the runtime are the same Debian release on purpose: a binary linked against a newer
# glibc (rust:1 is Debian trixie now) fails on cc-debian12 with "GLIBC_2.3x not found".
# scripts/distroless-check.sh runs the release binary the way this image does (CI has no Docker).
#
#   docker build -t cx-webhook .
#   docker run --rm -p 8080:8080 -e AUTH_MODE=none cx-webhook

FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the manifest, the lock file or the
# benches change. The benches are copied as they are (the manifest names them, and cargo reads every
# target it names even when building only the binary); a stub lib and main stand in for the sources,
# and the stub crate's own build outputs are deleted so the real sources are always compiled below.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin cx-webhook \
 && rm -rf src target/release/.fingerprint/cx-webhook-* target/release/deps/cx_webhook-* \
    target/release/deps/libcx_webhook-* target/release/cx-webhook

# The service itself (release profile: fat LTO, one codegen unit, stripped). `send --example`
# embeds the request fixtures, so they are part of the sources.
COPY tests/fixtures ./tests/fixtures
COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin cx-webhook

# The demo database, created now so a new container starts with it. Its directory belongs to the
# runtime user: SQLite's WAL mode creates -wal and -shm files beside the database, and bookings write.
RUN mkdir -p /out/data \
 && target/release/cx-webhook db init --seed --database-path /out/data/cx-webhook.db \
 && chown -R 65532:65532 /out/data \
 && chmod 0750 /out/data

# Runtime: glibc, libgcc_s, CA certificates, /etc/passwd with nonroot; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/cx-webhook /usr/local/bin/cx-webhook
COPY --from=build --chown=65532:65532 /out/data /var/lib/cx-webhook
ENV DATABASE_PATH=/var/lib/cx-webhook/cx-webhook.db \
    LOG_FORMAT=json
# AUTH_MODE is deliberately unset: the service refuses to start until the deployment chooses one.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cx-webhook"]
CMD ["serve"]
