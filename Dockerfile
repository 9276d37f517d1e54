# Container image of Berth. See docs/deploy.md.
#
# This file has never been built on the project's development machine: that machine has
# no Docker engine and no network access to Docker Hub. It is written to be correct, and
# it is the place to fix anything that a real build shows to be wrong.
#
#   docker build -t berth .
#   docker run -p 5000:5000 -v berth-data:/var/lib/berth berth

# ---- build ---------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Build the dependencies first, against a stub main.rs, so that a change to the sources
# alone does not rebuild them (this layer is reused while Cargo.toml and Cargo.lock are).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/berth target/release/deps/*berth-* \
           target/release/.fingerprint/berth-*

# The real sources. The binary embeds the SQL migrations, so they are needed here too.
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs \
 && cargo build --release --locked \
 && strip target/release/berth

# ---- runtime -------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid, so that volumes and Kubernetes securityContext can name it.
# The data directory holds the master key and the credentials file: 0700, owned by berth.
# A named volume mounted there starts as a copy of this directory, owner and mode included.
RUN groupadd --system --gid 10001 berth \
 && useradd --system --uid 10001 --gid berth --no-create-home \
            --home-dir /var/lib/berth --shell /usr/sbin/nologin berth \
 && install -d -o berth -g berth -m 0700 /var/lib/berth

COPY --from=build /src/target/release/berth /usr/local/bin/berth

USER 10001:10001
WORKDIR /var/lib/berth
VOLUME ["/var/lib/berth"]
EXPOSE 5000

# The slim image has no curl or wget, but it has bash, whose /dev/tcp is enough for one
# HTTP/1.0 request: GET /healthz answers "ok". It assumes the default CMD's port 5000;
# change it too if you run Berth on another port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -qx ok <&3"]

ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["serve", "--listen", "0.0.0.0:5000", "--data-dir", "/var/lib/berth"]
