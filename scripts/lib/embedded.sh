# Shared by quickstart.sh and smoke_e2e.sh: build the binaries and run an embedded
# aether-server (SQLite, artifacts on disk, local-process runtime) on a loopback port.

# Release binaries, unless AETHER_BIN / AETHER_SERVER_BIN point at prebuilt ones.
ensure_binaries() {
  if [[ -z "${AETHER_BIN:-}" || -z "${AETHER_SERVER_BIN:-}" ]]; then
    echo "building aether and aether-server (release)..." >&2
    CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release --locked -p aether-cli -p aether-server >&2
    AETHER_BIN="${AETHER_BIN:-$PWD/target/release/aether}"
    AETHER_SERVER_BIN="${AETHER_SERVER_BIN:-$PWD/target/release/aether-server}"
  fi
}

random_token() {
  python3 -c 'import secrets; print("aether_" + secrets.token_hex(32))'
}

# start_server DATA_DIR PORT TOKEN LOG: starts the server in the background on PORT (0: a port
# of its choosing), sets SERVER_PID and SERVER_URL (from the address it logs once it listens),
# and returns then (or fails after 30 s, showing the log).
start_server() {
  local data_dir="$1" port="$2" token="$3" log="$4"
  mkdir -p "$data_dir"
  AETHER_DATA_DIR="$data_dir" AETHER_LISTEN="127.0.0.1:$port" AETHER_API_TOKENS="$token:admin" RUST_LOG=info \
    nohup "$AETHER_SERVER_BIN" >"$log" 2>&1 </dev/null &
  SERVER_PID=$!
  local waited=0 address=""
  until address="$(grep -o 'aether-server listening.*address=[0-9.:]*' "$log" | sed 's/.*address=//' | head -n 1)" \
      && [[ -n "$address" ]]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || ((waited >= 300)); then
      echo "aether-server did not start; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  SERVER_URL="http://$address"
}

# stop_server PID: SIGTERM (the server stops its releases), then wait for it.
stop_server() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
