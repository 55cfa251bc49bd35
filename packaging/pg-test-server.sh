#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: own data directory in a fresh temp dir, own free
# TCP port on 127.0.0.1, a unix socket in the temp dir, no durability (fsync off). Stopped and
# deleted when the shell that started it exits, also on failure or Ctrl-C.
#
# Sourced (what packaging/test.sh does):   . packaging/pg-test-server.sh
#   starts the server, exports the variables below and sets EXIT/INT/TERM traps that stop it.
#   Returns non-zero, after printing the server log, when the server cannot start.
# Run directly, with a command:            packaging/pg-test-server.sh ctest --test-dir build -L postgres
#   starts the server, runs the command with the variables set, stops the server, exits with the
#   command's status.
#
# Exported for the tests:
#   MPPDL_TEST_PG             libpq keywords without the password, over TCP (scram-sha-256):
#                             host=127.0.0.1 port=N dbname=mppdl_test user=mppdl
#   MPPDL_TEST_PG_PASSWORD    mppdl-test (role mppdl: LOGIN CREATEDB, owns database mppdl_test)
#   MPPDL_TEST_PG_SUPERUSER   the superuser over the unix socket (trust):
#                             host=/tmp/mppdl-pg.XXXXXX port=N dbname=mppdl_test user=postgres
#
# When MPPDL_TEST_PG is already set, no server is started and the given one is used.
# MPPDL_PG_BIN overrides the directory of initdb/pg_ctl (default /usr/lib/postgresql/15/bin).
# MPPDL_PG_OPTS adds server options, e.g. MPPDL_PG_OPTS='-c log_statement=all'.
# MPPDL_PG_LISTEN is the address to listen on (default 127.0.0.1), MPPDL_PG_CLIENTS a network
# whose clients may also log in with a password: for a server that other network namespaces
# reach (tests/postgres/pg_cluster_test.cpp).
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user.
# The traps replace any EXIT/INT/TERM traps the sourcing shell had set before.

_mppdl_pg_log() { echo "pg-test-server: $*" >&2; }

# Runs a command as the user that owns the server (postgres when we are root), from the temp dir
# so that the server never needs access to the caller's working directory.
_mppdl_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$_mppdl_pg_dir" && LC_ALL=C runuser -u postgres -- "$@")
  else
    (cd "$_mppdl_pg_dir" && LC_ALL=C "$@")
  fi
}

# Prints a TCP port on 127.0.0.1 that nobody listens on right now.
_mppdl_pg_free_port() {
  local port
  if command -v python3 >/dev/null 2>&1 &&
    port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) && [ -n "$port" ]; then
    echo "$port"
    return 0
  fi
  # No python3: random ports below the ephemeral range until one refuses connections.
  local _
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 10000))
    if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Stops the server and removes the temp dir; safe to call twice and after a failed start.
mppdl_pg_stop() {
  if [ -n "${_mppdl_pg_dir:-}" ] && [ -d "$_mppdl_pg_dir" ]; then
    if [ -f "$_mppdl_pg_dir/data/postmaster.pid" ]; then
      _mppdl_pg_as_owner "$_mppdl_pg_bin/pg_ctl" stop -D "$_mppdl_pg_dir/data" -m fast -w -t 30 \
        >/dev/null 2>&1 ||
        _mppdl_pg_as_owner "$_mppdl_pg_bin/pg_ctl" stop -D "$_mppdl_pg_dir/data" -m immediate -w \
          >/dev/null 2>&1 || true
    fi
    rm -rf "$_mppdl_pg_dir" || true
  fi
  _mppdl_pg_dir=
}

_mppdl_pg_fail() {
  _mppdl_pg_log "$*"
  if [ -n "${_mppdl_pg_dir:-}" ] && [ -s "$_mppdl_pg_dir/server.log" ]; then
    echo "----- server log ($_mppdl_pg_dir/server.log) -----" >&2
    cat "$_mppdl_pg_dir/server.log" >&2
    echo "----- end of server log -----" >&2
  fi
  mppdl_pg_stop
  return 1
}

mppdl_pg_start() {
  if [ -n "${MPPDL_TEST_PG:-}" ]; then
    _mppdl_pg_log "MPPDL_TEST_PG is set, using that server: $MPPDL_TEST_PG"
    export MPPDL_TEST_PG
    [ -n "${MPPDL_TEST_PG_PASSWORD:-}" ] && export MPPDL_TEST_PG_PASSWORD
    [ -n "${MPPDL_TEST_PG_SUPERUSER:-}" ] && export MPPDL_TEST_PG_SUPERUSER
    return 0
  fi

  _mppdl_pg_bin=${MPPDL_PG_BIN:-/usr/lib/postgresql/15/bin}
  if [ ! -x "$_mppdl_pg_bin/initdb" ] || [ ! -x "$_mppdl_pg_bin/pg_ctl" ]; then
    _mppdl_pg_log "no initdb/pg_ctl in $_mppdl_pg_bin (install-deps.sh installs Debian's postgresql; MPPDL_PG_BIN overrides)"
    return 1
  fi
  local psql=psql
  [ -x "$_mppdl_pg_bin/psql" ] && psql=$_mppdl_pg_bin/psql

  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    _mppdl_pg_log "running as root but there is no 'postgres' user to run the server as"
    return 1
  fi

  # Stop the server whenever this shell exits. INT/TERM exit with 128+signal, which runs the EXIT
  # trap; an interactive shell that sources this file keeps its Ctrl-C behaviour.
  trap 'mppdl_pg_stop' EXIT
  case $- in
    *i*) ;;
    *) trap 'exit 130' INT; trap 'exit 143' TERM ;;
  esac

  # /tmp rather than $TMPDIR: the postgres user must reach it and the socket path must stay short.
  _mppdl_pg_dir=$(mktemp -d /tmp/mppdl-pg.XXXXXX) || { _mppdl_pg_log "mktemp failed"; return 1; }
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$_mppdl_pg_dir" || { _mppdl_pg_fail "cannot chown $_mppdl_pg_dir"; return 1; }
  fi

  local started=${EPOCHREALTIME/[.,]/}
  if ! _mppdl_pg_as_owner "$_mppdl_pg_bin/initdb" -D "$_mppdl_pg_dir/data" -U postgres \
    -E UTF8 --locale=C --auth-local=trust --auth-host=scram-sha-256 --no-sync --no-instructions \
    >"$_mppdl_pg_dir/initdb.log" 2>&1; then
    cat "$_mppdl_pg_dir/initdb.log" >&2
    _mppdl_pg_fail "initdb failed"
    return 1
  fi

  # TCP: scram-sha-256 for everybody (tests check wrong passwords). Unix socket: trust for the
  # superuser that does the set-up, scram-sha-256 for the others.
  cat >"$_mppdl_pg_dir/data/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
EOF
  local listen=${MPPDL_PG_LISTEN:-127.0.0.1}
  if [ -n "${MPPDL_PG_CLIENTS:-}" ]; then
    echo "host    all       all       $MPPDL_PG_CLIENTS   scram-sha-256" >>"$_mppdl_pg_dir/data/pg_hba.conf"
  fi

  # pg_ctl hands -o to a shell command line: one line, no spaces inside a value.
  local opts="-c listen_addresses=$listen -c unix_socket_directories=$_mppdl_pg_dir"
  opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  opts+=" -c max_connections=50 -c shared_buffers=32MB -c password_encryption=scram-sha-256"
  [ -n "${MPPDL_PG_OPTS:-}" ] && opts+=" $MPPDL_PG_OPTS"
  local port attempt ok=
  for attempt in 1 2 3 4 5; do
    port=$(_mppdl_pg_free_port) || { _mppdl_pg_fail "found no free TCP port"; return 1; }
    rm -f "$_mppdl_pg_dir/server.log"  # pg_ctl creates it as the server user
    if _mppdl_pg_as_owner "$_mppdl_pg_bin/pg_ctl" start -D "$_mppdl_pg_dir/data" -w -t 60 \
      -l "$_mppdl_pg_dir/server.log" \
      -o "-p $port $opts" \
      >/dev/null 2>&1; then
      ok=1
      break
    fi
    # Another process took the port between the check and the bind: try another one.
    grep -q 'Address already in use' "$_mppdl_pg_dir/server.log" 2>/dev/null || break
    _mppdl_pg_log "port $port taken (attempt $attempt), trying another"
  done
  [ -n "$ok" ] || { _mppdl_pg_fail "the server did not start"; return 1; }

  if ! PGCONNECT_TIMEOUT=10 "$psql" -X -q -v ON_ERROR_STOP=1 \
    "host=$_mppdl_pg_dir port=$port dbname=postgres user=postgres" \
    -c "CREATE ROLE mppdl LOGIN CREATEDB PASSWORD 'mppdl-test'" \
    -c "CREATE DATABASE mppdl_test OWNER mppdl" >"$_mppdl_pg_dir/setup.log" 2>&1; then
    cat "$_mppdl_pg_dir/setup.log" >&2
    _mppdl_pg_fail "creating role mppdl / database mppdl_test failed"
    return 1
  fi

  export MPPDL_TEST_PG="host=$listen port=$port dbname=mppdl_test user=mppdl"
  export MPPDL_TEST_PG_PASSWORD=mppdl-test
  export MPPDL_TEST_PG_SUPERUSER="host=$_mppdl_pg_dir port=$port dbname=mppdl_test user=postgres"
  _mppdl_pg_log "PostgreSQL $("$_mppdl_pg_bin/pg_ctl" --version | awk '{print $3}') on $listen:$port," \
    "socket in $_mppdl_pg_dir, ready in $(((${EPOCHREALTIME/[.,]/} - started) / 1000)) ms"
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  # Run directly: start, run the command, stop (EXIT trap), keep the command's status.
  if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]   (or source it: . $0)" >&2
    exit 2
  fi
  mppdl_pg_start || exit 1
  "$@"
  exit $?
fi

mppdl_pg_start
