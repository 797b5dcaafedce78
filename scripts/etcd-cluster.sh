#!/usr/bin/env bash
# Starts a three-member etcd cluster on 127.0.0.1 for comparing against
# Ridgeline (tools/etcdbench), waits until every member is healthy, prints the
# endpoints, and stops everything (and removes its data) on Ctrl-C or exit.
#
# Members use etcd's default settings, fsync included, as etcd ships.
# Needs etcd and etcdctl (Debian: apt-get install etcd-server etcd-client).
# ETCD and ETCDCTL override the binaries; DATA_DIR the parent of the
# temporary data directory.
set -euo pipefail

ETCD=${ETCD:-etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
CLIENT_PORTS=(2379 22379 32379)
PEER_PORTS=(2380 22380 32380)
NAMES=(e1 e2 e3)

for bin in "$ETCD" "$ETCDCTL"; do
  command -v "$bin" >/dev/null || { echo "$bin not found: apt-get install etcd-server etcd-client" >&2; exit 1; }
done
for port in "${CLIENT_PORTS[@]}" "${PEER_PORTS[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use: stop what holds it" >&2
    exit 1
  fi
done

data=$(mktemp -d "${DATA_DIR:-${TMPDIR:-/tmp}}/etcd-cluster.XXXXXX")
pids=()
stop() {
  local rc=$?
  trap - INT TERM EXIT
  echo
  echo "stopping etcd..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$data"
  echo "stopped; removed $data"
  exit "$rc"
}
trap stop INT TERM EXIT

initial=""
for i in 0 1 2; do
  initial+="${initial:+,}${NAMES[$i]}=http://127.0.0.1:${PEER_PORTS[$i]}"
done
endpoints=""
for i in 0 1 2; do
  name=${NAMES[$i]} client=http://127.0.0.1:${CLIENT_PORTS[$i]} peer=http://127.0.0.1:${PEER_PORTS[$i]}
  endpoints+="${endpoints:+,}127.0.0.1:${CLIENT_PORTS[$i]}"
  mkdir -p "$data/logs"
  # ETCD_UNSUPPORTED_ARCH lets Debian's etcd start on arm64 and is ignored elsewhere.
  ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH:-arm64} "$ETCD" --name "$name" --data-dir "$data/$name" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token etcd-cluster-sh \
    >"$data/logs/$name.log" 2>&1 &
  pids+=($!)
  printf '%-3s client %-22s peer %-22s log %s\n' "$name" "$client" "$peer" "$data/logs/$name.log"
done

echo "waiting for the members to be healthy..."
deadline=$((SECONDS + 60))
until ETCDCTL_API=3 "$ETCDCTL" --endpoints "$endpoints" --dial-timeout 1s --command-timeout 2s endpoint health >/dev/null 2>&1; do
  for p in "${pids[@]}"; do
    if ! kill -0 "$p" 2>/dev/null; then
      echo "a member exited; its log:" >&2; tail -n 20 "$data"/logs/*.log >&2; exit 1
    fi
  done
  if [ $SECONDS -ge $deadline ]; then
    echo "etcd not healthy after 60s; logs:" >&2; tail -n 20 "$data"/logs/*.log >&2; exit 1
  fi
  sleep 0.2
done
ETCDCTL_API=3 "$ETCDCTL" --endpoints "$endpoints" endpoint status -w table || true

cat <<EOM

etcd is up: 3 members, data in $data (removed on exit).
Endpoints: $endpoints
In another terminal:

  go -C tools/etcdbench build -o ../../bin/etcdbench .
  bin/etcdbench --endpoints $endpoints --workload A

Press Ctrl-C to stop.
EOM
wait -n "${pids[@]}" || true
echo "a member exited; logs:" >&2
tail -n 20 "$data"/logs/*.log >&2
exit 1
