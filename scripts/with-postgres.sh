#!/usr/bin/env bash
# Runs a command with a PostgreSQL server of its own: initdb in a temporary directory (as the
# `postgres` user when run as root), 127.0.0.1 on a free port, URL in LOOPS_BENCH_POSTGRES_URL;
# the server is stopped by its PID and the directory removed afterwards.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "with-postgres: PostgreSQL is not installed (Debian: postgresql)" >&2; exit 1; }
dir=$(mktemp -d /tmp/loops-bench-pg.XXXXXX)
as_postgres=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$dir"
    as_postgres=(setpriv --reuid=postgres --regid=postgres --clear-groups)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
"${as_postgres[@]}" "$bin/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$port" >"$dir/log" 2>&1 &
pid=$!
cleanup() { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.1; done
LOOPS_BENCH_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable" "$@"
