#!/bin/bash
# A client that vanishes for real, and how long squall takes to let it go.
#
# The tests (tests/site_tcp_keepalive.rs) vanish a client by closing its
# socket in TCP_REPAIR mode: its kernel forgets the connection and answers
# the server's first keep-alive probe with an RST. The other way to vanish,
# a host that is simply gone (power cut, cable pulled), answers nothing:
# the server must send every probe and give up. That needs a network a
# test can cut, so it is this probe rather than a test:
#
#   server  netns sq-srv 10.77.0.1 ──veth── 10.77.0.2 netns sq-cli  client
#
# The client sends one request, keeps its connection open and idle, then
# its link goes down. The script reads squall_http_connections on /metrics
# until the client's connection is gone and prints how long that took.
#
# Usage (root, iproute2, curl, python3):
#   scripts/vanish-probe.sh [KEEPALIVE_SECS]    # default 2; 0 = off
# With 2: the first probe after 2 s of silence, then one every 2 s; the
# sixth unanswered one ends it, 2 + 6 x 2 = 14 s after the connection's
# last byte (TcpKeepalive::gives_up_after), which was just before the link
# went down. With 0 it stays until the script gives up (60 s).
# BIN=path/to/squall to use a given binary (default: target/release/squall,
# built if missing).
set -euo pipefail
KEEPALIVE=${1:-2}
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/squall}
[ -x "$BIN" ] || cargo build --release --quiet
SRV=sq-srv CLI=sq-cli
cleanup() {
    kill "${CLIENT:-}" "${SERVER:-}" 2>/dev/null || true
    wait 2>/dev/null || true
    ip netns del $SRV 2>/dev/null || true
    ip netns del $CLI 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add $SRV
ip netns add $CLI
ip link add vsrv netns $SRV type veth peer name vcli netns $CLI
ip -n $SRV addr add 10.77.0.1/24 dev vsrv
ip -n $CLI addr add 10.77.0.2/24 dev vcli
for ns in $SRV $CLI; do ip -n $ns link set lo up; done
ip -n $SRV link set vsrv up
ip -n $CLI link set vcli up

ip netns exec $SRV env RUST_LOG=warn "$BIN" --address 10.77.0.1 --port 8890 \
    --tcp-keepalive "$KEEPALIVE" --cookie-secret probe >/dev/null 2>&1 &
SERVER=$!
# /metrics counts its own connection too: the client's is "above 1".
connections() {
    ip netns exec $SRV curl -s --max-time 2 http://10.77.0.1:8890/metrics |
        awk '$1 == "squall_http_connections" { print $2 }'
}
wait_for() { # wait_for CONDITION-COMMAND...: up to 10 s
    for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
    echo "gave up waiting for: $*" >&2
    exit 1
}
server_up() { [ -n "$(connections)" ]; }
wait_for server_up

ip netns exec $CLI python3 -c '
import socket, time
s = socket.create_connection(("10.77.0.1", 8890))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n")
print("client:", s.recv(200).split(b"\r\n")[0].decode(), flush=True)
time.sleep(3600)  # idle, open, until killed
' &
CLIENT=$!
client_connected() { [ "$(connections)" = 2 ]; }
wait_for client_connected

ip -n $CLI link set vcli down
start=$(date +%s.%N)
echo "link down; keep-alive ${KEEPALIVE} s"
while [ "$(connections)" != 1 ]; do
    if (($(echo "$(date +%s.%N) - $start > 60" | bc))); then
        echo "still open 60 s after the link went down"
        exit 0
    fi
    sleep 0.2
done
echo "let go $(echo "$(date +%s.%N) - $start" | bc) s after the link went down"
