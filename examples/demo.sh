#!/bin/sh
# make demo: a local etcd, an example app, one agent registering the app and
# one agent discovering it; prints what the discovering side sees and what to
# try next. Ctrl-C stops everything (without a terminal it stops by itself).
set -eu
BEACON=$(readlink -f "${1:-build/beacon}")
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/beacon-demo.XXXXXX)
PIDS=""

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	sleep 0.3
	for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Debian's interpreter directly: a version-manager shim would fork, and the
# PID we record must be the app's own.
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # command... : retry for 10 s
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 100 ] && { echo "demo: timed out waiting for: $*" >&2; exit 1; }
		sleep 0.1
	done
}

ETCD_PORT=$(free_port); PEER_PORT=$(free_port); APP_PORT=$(free_port)
ETCD="http://127.0.0.1:$ETCD_PORT"

echo "== starting etcd on $ETCD (data in $DIR/etcd)"
etcd --name demo --data-dir "$DIR/etcd" \
	--listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
	--listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
	--initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
	--initial-cluster "demo=http://127.0.0.1:$PEER_PORT" >"$DIR/etcd.log" 2>&1 &
PIDS="$PIDS $!"
wait_for curl -sf "$ETCD/health"

echo "== starting the example app on 127.0.0.1:$APP_PORT"
"$PY" "$HERE/app.py" --port "$APP_PORT" --unhealthy-file "$DIR/unhealthy" &
PIDS="$PIDS $!"
wait_for curl -sf "http://127.0.0.1:$APP_PORT/healthz"

echo "== starting agent 1: registers the app as service \"web\""
ETCD=$ETCD APP_PORT=$APP_PORT NODE=node1 BEACON_SOCKET="$DIR/web.sock" \
	"$BEACON" agent --config "$HERE/etcd-web.json" 2>"$DIR/web-agent.log" &
PIDS="$PIDS $!"

echo "== starting agent 2: discovers \"web\" for another app"
ETCD=$ETCD BEACON_SOCKET="$DIR/client.sock" \
	"$BEACON" agent --config "$HERE/etcd-client.json" 2>"$DIR/client-agent.log" &
PIDS="$PIDS $!"

wait_for curl -sf --unix-socket "$DIR/web.sock" http://beacon/ready
wait_for curl -sf --unix-socket "$DIR/client.sock" http://beacon/ready
etcdctl --endpoints "$ETCD" put /config/web/color blue >/dev/null
# Registration and the check may take a moment to show up on the other side.
wait_for sh -c "'$BEACON' --socket '$DIR/client.sock' endpoints web | grep -q passing"

echo
echo "\$ beacon --socket $DIR/client.sock endpoints web"
"$BEACON" --socket "$DIR/client.sock" endpoints web
echo
echo "\$ beacon --socket $DIR/client.sock pick web"
"$BEACON" --socket "$DIR/client.sock" pick web
echo
wait_for "$BEACON" --socket "$DIR/client.sock" kv /config/web/color
echo "\$ beacon --socket $DIR/client.sock kv /config/web/color"
"$BEACON" --socket "$DIR/client.sock" kv /config/web/color
echo
echo "\$ beacon --socket $DIR/client.sock status"
"$BEACON" --socket "$DIR/client.sock" status
echo
cat <<EOT
Discovery works. Things to try in another terminal while this runs:
  alias beacon=$BEACON
  export BEACON_SOCKET=$DIR/client.sock
  beacon endpoints web --json
  curl --unix-socket \$BEACON_SOCKET 'http://beacon/v1/endpoints/web?index=1&wait=30s'   # blocking read
  touch $DIR/unhealthy        # the app fails its health check: web turns critical (see beacon endpoints web --all)
  rm $DIR/unhealthy           # and passing again
  BEACON_SOCKET=$DIR/web.sock beacon drain    # take web out of discovery (and resume)
  etcdctl --endpoints $ETCD put /config/web/color green ; beacon kv /config/web/color
  beacon pick legacy-db ; beacon status
Logs: $DIR/*.log.  Press Ctrl-C to stop everything.
EOT
# Stay up for the user; without a terminal (CI, scripts) stop now.
if [ -t 0 ]; then
	while :; do sleep 3600; done
fi
