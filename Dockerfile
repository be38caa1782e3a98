# authgate container image: multi-stage build, slim non-root runtime.
#   docker build -t authgate .
#   docker run -p 8080:8080 -v $PWD/my-config:/etc/authgate:ro authgate
# Mount a config with `listen: [{address: 0.0.0.0:8080}]` (the shipped reference binds
# loopback). State — API-created apps, custom domains, issued certificates — lives under
# /var/lib/authgate (`data/`, `certs/`); mount a volume there to keep it.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir -p src config \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs config/demo.yaml \
 && cargo build --release --locked --bin authgate \
 && rm -rf src config
COPY src ./src
COPY config ./config
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin authgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin authgate \
 && mkdir -p /var/lib/authgate/data /var/lib/authgate/certs \
 && chown -R 10001 /var/lib/authgate
COPY --from=build /src/target/release/authgate /usr/local/bin/authgate
COPY config/authgate.yaml /etc/authgate/authgate.yaml
USER 10001
WORKDIR /var/lib/authgate
# Traffic; the admin listener (health, metrics, admin API) binds loopback unless configured.
EXPOSE 8080
STOPSIGNAL SIGTERM
# `authgate health` asks the running gateway's /readyz (health listener, else admin listener).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/authgate", "health", "-c", "/etc/authgate/authgate.yaml"]
ENTRYPOINT ["/usr/local/bin/authgate"]
CMD ["run", "-c", "/etc/authgate/authgate.yaml"]
