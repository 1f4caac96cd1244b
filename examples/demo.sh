#!/bin/bash
# The local demo: three services (productpage -> reviews v1|v2 -> ratings)
# as kite-sample processes, joined by one kite-proxy that serves ingress on
# 127.0.0.1:8080 and carries service-to-service calls (HTTP_PROXY) on 15001.
# Run by `make demo`. Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KITE_BIN_DIR:-build/bin}
STATE=$(mktemp -d "${TMPDIR:-/tmp}/kite-demo.XXXXXX")
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	echo "demo: stopped everything; logs were in $STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in 8080 15000 15001 19080 19081 19082 19083; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "demo: 127.0.0.1:$port is already in use; stop whatever listens there and retry" >&2
		exit 1
	fi
done

wait_port() { # port, what
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "demo: $2 did not start on 127.0.0.1:$1; its log:" >&2
	tail -20 "$STATE/$2.log" >&2
	exit 1
}

start() { # name port app version [call]
	local name=$1 port=$2 app=$3 ver=$4 call=${5:-}
	local args=(--listen "127.0.0.1:$port" --app "$app" --version "$ver" --log-level warn)
	[ -n "$call" ] && args+=(--call "$call")
	HTTP_PROXY=http://127.0.0.1:15001 "$BIN/kite-sample" "${args[@]}" >"$STATE/$name.log" 2>&1 &
	PIDS+=($!)
	wait_port "$port" "$name"
}

echo "demo: starting kite-proxy (ingress 127.0.0.1:8080, outbound 127.0.0.1:15001, admin 127.0.0.1:15000)"
"$BIN/kite-proxy" -c examples/demo-mesh.yaml --concurrency 2 --log-level warn >"$STATE/kite-proxy.log" 2>&1 &
PIDS+=($!)
wait_port 8080 kite-proxy
start ratings 19083 ratings v1
start reviews-v1 19081 reviews v1 http://ratings:9080/ratings
start reviews-v2 19082 reviews v2 http://ratings:9080/ratings
start productpage 19080 productpage v1 http://reviews:9080/reviews

echo
echo "demo: four requests to the ingress; productpage calls reviews, which alternates v1/v2:"
for i in 1 2 3 4; do
	body=$(curl -sS --max-time 5 "http://127.0.0.1:8080/productpage?i=$i")
	python3 - "$body" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
def chain(n):
    out = [n["workload"]]
    for c in n.get("calls", []):
        out.append(chain(c["body"]) if isinstance(c.get("body"), dict) else f"({c.get('error', c.get('status'))})")
    return " -> ".join(out)
print("   ", chain(d))
PY
done

echo
echo "demo: a route that points at nothing answers with a reason:"
curl -sS -o /dev/null -D - http://127.0.0.1:15001/ -H 'Host: details:9080' | grep -i -E '^HTTP|x-kite-error'

echo
echo "demo: Envoy-named statistics from the admin API (127.0.0.1:15000/stats):"
curl -sS http://127.0.0.1:15000/stats | grep -E '^cluster\.(reviews|ratings)\.upstream_rq_(total|2xx)|^http\.(ingress|outbound)_http\.downstream_rq_total' | sed 's/^/    /'

sleep 1.2 # access logs are flushed once a second
echo
echo "demo: access log (Envoy's default format):"
grep -E '"GET ' "$STATE/kite-proxy.log" | tail -6 | sed 's/^/    /'

if [ -t 0 ] && [ "${KITE_DEMO_EXIT:-}" != 1 ]; then
	echo
	echo "demo: the mesh keeps running; try  curl http://127.0.0.1:8080/  or  curl http://127.0.0.1:15000/help"
	echo "demo: press Ctrl-C to stop"
	while sleep 3600; do :; done
fi
