# shellcheck shell=bash
# Sourced by the scripts that test a running `bridle demo` (interop.sh,
# console-tests.sh, schemathesis.sh). `start_demo BIN` starts the demo on a free loopback
# port with a throwaway database in "$work" and waits until it has printed
# its keys and answers /healthz; then $base is its URL, $key the admin API
# key and "$work/demo.log" its output. The server is stopped and "$work"
# removed on exit; stopping it never turns the caller's status into a
# failure (the killed server's 143 is not the test's result).

work=$(mktemp -d)
demo_pid=
stop_demo() {
    if [[ -n "$demo_pid" ]]; then
        kill "$demo_pid" 2>/dev/null || true
        wait "$demo_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop_demo EXIT

start_demo() {
    local bin=$1 port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"
    "$bin" demo --listen "127.0.0.1:$port" --db-file "$work/demo.db" >"$work/demo.log" 2>&1 &
    demo_pid=$!
    key=
    for _ in $(seq 1 240); do
        if ! kill -0 "$demo_pid" 2>/dev/null; then
            echo "bridle demo exited early:" >&2
            cat "$work/demo.log" >&2
            exit 1
        fi
        # The demo prints the people's keys last.
        key=$(sed -n 's/^Admin API key:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$work/demo.log" | head -n 1)
        if [[ -n "$key" ]] && grep -q "frank (finance-approvers)" "$work/demo.log" \
            && curl -fs -o /dev/null "$base/healthz"; then
            return 0
        fi
        key=
        sleep 0.5
    done
    echo "bridle demo did not become ready in time:" >&2
    cat "$work/demo.log" >&2
    exit 1
}
