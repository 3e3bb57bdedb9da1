#!/usr/bin/env bash
# What TLS costs a reconnect: full TLS 1.3 mutual handshakes against reconnects that reuse the
# agent's client config (session resumption), over loopback, in one process.
#   bash benches/tls.sh
# The throughput side (initial sync with TLS against plaintext) is in benches/spine.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked -p drpair-tls --lib handshake_timing -- --ignored --nocapture 2>&1 | grep -E "TLS 1.3|panicked|FAILED"
