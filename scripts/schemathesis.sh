#!/usr/bin/env bash
# R4: schemathesis against the served OpenAPI document. Starts `bridle demo`
# (the real server with the reference agents and some activity) on a free
# loopback port with a throwaway database, then fuzzes the API in three
# passes: the agent operations with an agent's access token, the token
# endpoint with client_secret_basic, and every operation as the demo's admin.
# Checks that no response is a 5xx and that every response matches its
# documented schema; exits non-zero on any failure. About 30 s on 2 cores.
#
#   scripts/schemathesis.sh                 # build if needed, run, clean up
#   MAX_EXAMPLES=50 scripts/schemathesis.sh # more cases per operation
#   SCHEMATHESIS_ARGS="--seed 1" scripts/schemathesis.sh
#   REPORT_DIR=target/schemathesis scripts/schemathesis.sh  # JUnit + HAR per pass
#
# Needs python3 (with venv) and network access to PyPI the first time: the
# pinned schemathesis goes into a project-local `.venv`.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-20}
TIME_LIMIT=${TIME_LIMIT:-300}
BIN=${BRIDLE_BIN:-target/debug/bridle}

# The pinned schemathesis in .venv.
if ! .venv/bin/schemathesis --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [[ -z "${BRIDLE_BIN:-}" ]]; then
    cargo build --quiet --locked -p bridle
fi

# shellcheck source=scripts/lib/demo.sh
source scripts/lib/demo.sh
start_demo "$BIN"

# An agent credential and access token, for the operations agents call.
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
creds=$(curl -fsS -X POST -H "Authorization: Bearer $key" "$base/v1/agents/procurement-bot/credentials")
client_id=$(json_field client_id <<<"$creds")
client_secret=$(json_field client_secret <<<"$creds")
agent_token=$(curl -fsS -u "$client_id:$client_secret" -d grant_type=client_credentials "$base/oauth/token" |
    json_field access_token)

echo "schemathesis $SCHEMATHESIS_VERSION against $base (at most $MAX_EXAMPLES examples per operation, ${TIME_LIMIT}s in all)"
deadline=$((SECONDS + TIME_LIMIT))
failed=()
pass() {
    local slug=$1 name=$2 left=$((deadline - SECONDS)) rc=0 report=()
    shift 2
    if [[ -n "${REPORT_DIR:-}" ]]; then
        report=(--report junit,har --report-dir "$REPORT_DIR/$slug")
    fi
    echo
    echo "=== $name"
    if ((left <= 0)); then
        echo "no time left" >&2
        failed+=("$name (not run: time limit)")
        return
    fi
    # shellcheck disable=SC2086 # SCHEMATHESIS_ARGS is a list of options
    timeout --signal=INT --kill-after=30 "$left" \
        .venv/bin/schemathesis run "$base/openapi.json" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "$MAX_EXAMPLES" \
        "${report[@]}" "$@" ${SCHEMATHESIS_ARGS:-} || rc=$?
    if ((rc == 124)); then
        failed+=("$name (time limit)")
    elif ((rc != 0)); then
        failed+=("$name (exit $rc)")
    fi
}

# Agents first: the admin pass may suspend or retire the demo's agents.
pass agent "as an agent (procurement-bot's access token)" \
    --header "Authorization: Bearer $agent_token" \
    --include-operation-id-regex '^(decide|decision_outcome|request_elevation|list_elevations|end_elevation|show_agent|show_approval)$'
pass client "as an OAuth client (client_secret_basic)" \
    --auth "$client_id:$client_secret" \
    --include-operation-id token \
    --phases examples,coverage,fuzzing # no links from a single operation
pass admin "as the admin (every operation)" \
    --header "Authorization: Bearer $key"

if grep -q 'request failed\|panicked' "$work/demo.log"; then
    echo >&2
    echo "from the server log:" >&2
    grep 'request failed\|panicked' "$work/demo.log" | head -n 20 >&2
fi
echo
if ((${#failed[@]})); then
    printf 'schemathesis FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "schemathesis passed: no 5xx, every response matches the document"
