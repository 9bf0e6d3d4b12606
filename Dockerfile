# rollout-guard's image: a release build on Debian 12, run on distroless (glibc, libgcc) as a
# non-root user. tests/chart.rs checks the stages, the user and that the binary's path is the
# Helm chart's command.
#
#   docker build -t REGISTRY/rollout-guard:0.1.0 .

FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Dependencies first, in their own layer: build them against stub targets with only the
# manifests, so that editing the sources does not rebuild every crate. Cargo refuses a manifest
# whose targets are missing, so every `[[bench]]` it declares gets a stub; the stubs stay (only
# the binary is built, and the benchmarks' sources stay out of the image build).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in $(sed -n '/^\[\[bench\]\]/{n;s/^name = "\(.*\)"/\1/p}' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$b.rs"; \
    done \
 && cargo build --release --locked --no-default-features \
 && rm -rf src

COPY src src
COPY rules rules
# COPY keeps the files' times, which can be older than the stub build's: touch the roots so
# that cargo rebuilds the crate itself. Without the `sim` feature (the fake API server, the
# simulator, `demo`: the test rig stays out of the image), and stripped of its debug sections.
# The commit built, for rollout_guard_build_info: docker build --build-arg ROLLOUT_GUARD_COMMIT=$(git rev-parse --short HEAD)
ARG ROLLOUT_GUARD_COMMIT=unknown
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --no-default-features --bin rollout-guard \
 && strip target/release/rollout-guard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/rollout-guard /rollout-guard
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/rollout-guard"]
CMD ["run", "--config", "/etc/rollout-guard/config.yaml"]
