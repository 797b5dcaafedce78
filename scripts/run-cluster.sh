#!/usr/bin/env bash
# Starts a local three-node Ridgeline cluster on 127.0.0.1 and two replicas
# of the lift-ride service on it, waits until they serve, prints how to use
# them, and stops everything on Ctrl-C.
# Data lives in $RUN_DIR (default .run/) and survives restarts: run again and
# the nodes rejoin with their data. `make clean-run` wipes it.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-.run}
NODES=3
BASE_GRPC=${BASE_GRPC:-7001}
BASE_GOSSIP=${BASE_GOSSIP:-7946}
BASE_HTTP=${BASE_HTTP:-8001}
SHARDS=${SHARDS:-32}
BASE_LIFTRIDE=${BASE_LIFTRIDE:-8080}
LIFTRIDES=${LIFTRIDES:-2}
# KVNODE_FLAGS: extra kvnode flags for every node, e.g. "--group-commit-linger 2ms"

for i in $(seq 0 $((NODES - 1))); do
  for port in $((BASE_GRPC + i)) $((BASE_GOSSIP + i)) $((BASE_HTTP + i)); do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
      echo "port $port on 127.0.0.1 is in use: stop what holds it, or set BASE_GRPC/BASE_GOSSIP/BASE_HTTP" >&2
      exit 1
    fi
  done
done
for i in $(seq 0 $((LIFTRIDES - 1))); do
  port=$((BASE_LIFTRIDE + i))
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use: stop what holds it, or set BASE_LIFTRIDE" >&2
    exit 1
  fi
done

mkdir -p "$RUN_DIR/logs"
pids=()
stopping=
stop() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "stopping nodes..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "stopped. Data kept in $RUN_DIR (make clean-run removes it)."
}
trap stop INT TERM EXIT

join=""
for i in $(seq 0 $((NODES - 1))); do
  join+="${join:+,}127.0.0.1:$((BASE_GOSSIP + i))"
done
endpoints=""
for i in $(seq 0 $((NODES - 1))); do
  id="n$((i + 1))"
  endpoints+="${endpoints:+,}127.0.0.1:$((BASE_GRPC + i))"
  bin/kvnode --id "$id" --data-dir "$RUN_DIR/$id" \
    --addr "127.0.0.1:$((BASE_GRPC + i))" --gossip-addr "127.0.0.1:$((BASE_GOSSIP + i))" \
    --http-addr "127.0.0.1:$((BASE_HTTP + i))" --join "$join" \
    --bootstrap-expect "$NODES" --shards "$SHARDS" ${KVNODE_FLAGS:-} >"$RUN_DIR/logs/$id.log" 2>&1 &
  pids+=($!)
  printf '%-3s grpc 127.0.0.1:%-5d gossip 127.0.0.1:%-5d http http://127.0.0.1:%d  log %s\n' \
    "$id" $((BASE_GRPC + i)) $((BASE_GOSSIP + i)) $((BASE_HTTP + i)) "$RUN_DIR/logs/$id.log"
done

echo "waiting for the cluster to serve..."
deadline=$((SECONDS + 60))
for i in $(seq 0 $((NODES - 1))); do
  until curl -sf "http://127.0.0.1:$((BASE_HTTP + i))/readyz" >/dev/null 2>&1; do
    for p in "${pids[@]}"; do
      if ! kill -0 "$p" 2>/dev/null; then
        echo "a node exited; its log:" >&2; tail -n 20 "$RUN_DIR"/logs/*.log >&2; exit 1
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster not ready after 60s; logs are in $RUN_DIR/logs" >&2; exit 1
    fi
    sleep 0.2
  done
done

export RIDGELINE_ENDPOINTS="$endpoints"
bin/kvctl status || true

# The lift-ride service: stateless replicas over the cluster.
urls=""
for i in $(seq 0 $((LIFTRIDES - 1))); do
  port=$((BASE_LIFTRIDE + i))
  bin/liftride --id "liftride-$((i + 1))" --listen "127.0.0.1:$port" --endpoints "$endpoints" \
    ${LIFTRIDE_FLAGS:-} >"$RUN_DIR/logs/liftride-$((i + 1)).log" 2>&1 &
  pids+=($!)
  urls+="${urls:+,}http://127.0.0.1:$port"
done
for i in $(seq 0 $((LIFTRIDES - 1))); do
  port=$((BASE_LIFTRIDE + i))
  until curl -sf "http://127.0.0.1:$port/resorts" >/dev/null 2>&1; do
    if [ $SECONDS -ge $((deadline + 30)) ]; then
      echo "liftride on port $port not serving; see $RUN_DIR/logs/liftride-$((i + 1)).log" >&2; exit 1
    fi
    sleep 0.2
  done
  printf 'liftride-%d  http://127.0.0.1:%d  log %s\n' $((i + 1)) "$port" "$RUN_DIR/logs/liftride-$((i + 1)).log"
done
cat <<EOM

Ridgeline is up: $NODES nodes, $SHARDS shards, 3 replicas each, and $LIFTRIDES lift-ride
service replicas ($urls). In another terminal:

  curl -s http://127.0.0.1:$BASE_LIFTRIDE/resorts
  curl -s -X POST http://127.0.0.1:$BASE_LIFTRIDE/resorts/1/seasons -d '{"year":"2025"}'
  curl -s -X POST http://127.0.0.1:$BASE_LIFTRIDE/skiers/1/seasons/2025/days/1/skiers/7 -d '{"time":217,"liftID":21}'
  curl -s http://127.0.0.1:$BASE_LIFTRIDE/skiers/1/seasons/2025/days/1/skiers/7
  bin/liftload --urls $urls --verify        # the standard load test (200,000 POSTs)

  export RIDGELINE_ENDPOINTS=$endpoints
  bin/kvctl put greeting hello
  bin/kvctl get greeting
  bin/kvctl scan --prefix gr
  bin/kvctl status
  bin/kvctl bench --workload A --duration 20s

Metrics: http://127.0.0.1:$BASE_HTTP/metrics   Press Ctrl-C to stop.
EOM
# A process that dies (or is killed, to watch the rest cope) is reported;
# the others keep running until Ctrl-C.
trap 'stopping=1' INT TERM
running=("${pids[@]}")
while [ -z "$stopping" ] && [ ${#running[@]} -gt 0 ]; do
  wait -n "${running[@]}" 2>/dev/null || true
  [ -n "$stopping" ] && break
  still=()
  for p in "${running[@]}"; do kill -0 "$p" 2>/dev/null && still+=("$p"); done
  if [ ${#still[@]} -lt ${#running[@]} ]; then
    echo "a process exited (${#still[@]} of ${#pids[@]} still running); see $RUN_DIR/logs" >&2
  fi
  running=("${still[@]}")
done
