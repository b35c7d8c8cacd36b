# syntax=docker/dockerfile:1
# Build stage: compile the release binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked --bin handoff

# Runtime stage: the binary alone on a slim base, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data handoff \
 && mkdir -p /data && chown handoff /data
COPY --from=build /src/target/release/handoff /usr/local/bin/handoff
USER handoff
WORKDIR /data
ENV HANDOFF__SERVER__BIND=0.0.0.0:8080 \
    HANDOFF__STORAGE__DATA_DIR=/data \
    HANDOFF__LOG__FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["handoff"]
CMD ["serve"]
