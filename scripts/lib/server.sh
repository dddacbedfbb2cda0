# Sourced by the contract scripts: a fresh embedded aether-server on a port of its choosing.
# Needs $server_bin and $work (a scratch directory) set by the caller.
#
#   start_server NAME TOKENS   starts it on $work/data-NAME with AETHER_API_TOKENS=TOKENS and
#                              sets $base_url from the address it logs, and $server_log
#   stop_server                ends it (also safe when none runs), then fails when its log shows
#                              one of TOKENS or a token it minted
server_pid=""
server_tokens=""

start_server() {
    local data="$work/data-$1"
    server_log="$work/server-$1.log"
    mkdir -p "$data"
    AETHER_DATA_DIR="$data" AETHER_LISTEN=127.0.0.1:0 RUST_LOG=info AETHER_API_TOKENS="$2" \
        "$server_bin" 2>"$server_log" >/dev/null &
    server_pid=$!
    server_tokens="$2"
    local address=""
    for _ in $(seq 1 600); do
        address="$(grep -o 'aether-server listening.*address=[0-9.:]*' "$server_log" | sed 's/.*address=//' | head -n 1 || true)"
        [[ -n "$address" ]] && break
        kill -0 "$server_pid" 2>/dev/null || { echo "aether-server exited" >&2; cat "$server_log" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$address" ]] || { echo "aether-server did not start" >&2; cat "$server_log" >&2; exit 1; }
    base_url="http://$address"
}

stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        local entry
        for entry in ${server_tokens//,/ }; do
            if grep -qF -- "${entry%%:*}" "$server_log"; then
                echo "aether-server logged one of its tokens: $server_log" >&2
                return 1
            fi
        done
        if grep -qE 'aether_[0-9a-f]{32}' "$server_log"; then
            echo "aether-server logged a token it minted: $server_log" >&2
            return 1
        fi
    fi
}
