#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 for the store/cluster tests and print
#   export MONITOR_TEST_POSTGRES_URL=postgresql://monitor:…@127.0.0.1:PORT/postgres
# on stdout (everything else goes to stderr). Use from .ci/run as:
#   eval "$(bash .ci/postgres.sh)"
# Installs Debian's postgresql with apt-get when its binaries are missing. Runs the
# server as the `postgres` user when started as root (initdb refuses root). The data
# dir, socket and log live in $MONITOR_PG_DIR (default: a new temp dir); stop it with
#   pg_ctl -D "$MONITOR_PG_DIR/data" -m fast stop   (as the same user)
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    # the highest installed major version
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && echo "$d"; done | sort -t/ -k4 -n | tail -n1
}

BINDIR=$(find_bindir 2>/dev/null || true)
if [ -z "$BINDIR" ]; then
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BINDIR=$(find_bindir)
fi
[ -n "$BINDIR" ] || { log "no PostgreSQL binaries after install"; exit 1; }
log "using $BINDIR"

DIR=${MONITOR_PG_DIR:-$(mktemp -d /tmp/monitor-pg.XXXXXX)}
mkdir -p "$DIR"
chmod 0700 "$DIR"

if command -v python3 >/dev/null; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
else
    PORT=${MONITOR_PG_PORT:-55432}
fi
PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

RUNAS=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" --shell /usr/sbin/nologin postgres
    chown postgres: "$DIR"
    RUNAS=(runuser -u postgres --)
fi

umask 077
printf '%s\n' "$PASSWORD" > "$DIR/pw"
[ ${#RUNAS[@]} -eq 0 ] || chown postgres: "$DIR/pw"
"${RUNAS[@]}" "$BINDIR/initdb" -D "$DIR/data" -U monitor --auth=scram-sha-256 --pwfile="$DIR/pw" -E UTF8 --no-sync >&2
rm -f "$DIR/pw"
"${RUNAS[@]}" "$BINDIR/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=200" start >&2

for _ in $(seq 1 60); do
    "$BINDIR/pg_isready" -h 127.0.0.1 -p "$PORT" -q && break
    sleep 0.5
done
"$BINDIR/pg_isready" -h 127.0.0.1 -p "$PORT" >&2 || { log "server did not come up; log:"; cat "$DIR/log" >&2; exit 1; }

echo "export MONITOR_PG_DIR=$DIR"
echo "export MONITOR_PG_BINDIR=$BINDIR"
echo "export MONITOR_TEST_POSTGRES_URL=postgresql://monitor:$PASSWORD@127.0.0.1:$PORT/postgres"
