# authgate container image: multi-stage build, slim non-root runtime.
#   docker build -t authgate .
#   docker run -p 8080:8080 -v $PWD/config:/etc/authgate:ro authgate
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches config \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/admission.rs && touch config/demo.yaml \
 && cargo build --release --locked \
 && rm -rf src benches config
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin authgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin authgate
COPY --from=build /src/target/release/authgate /usr/local/bin/authgate
COPY config/authgate.yaml /etc/authgate/authgate.yaml
USER 10001
# Traffic; the admin listener (health, metrics) binds loopback unless the config says otherwise.
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/authgate"]
CMD ["run", "-c", "/etc/authgate/authgate.yaml"]
