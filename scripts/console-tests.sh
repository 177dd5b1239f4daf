#!/usr/bin/env bash
# The web console in a real browser: starts `bridle demo` on a free
# loopback port with a throwaway database and drives the system Chromium
# with Playwright (tests/console/browser.py): an approver approves a
# pending request and the agent's identical decision is then allowed; an
# admin suspends an agent and its token is refused; an auditor sees
# everything and changes nothing; a POST without the CSRF token is refused;
# the owner signs in from an OAuth client's authorization request, allows it
# on the consent page and the browser lands on the client's redirect URI
# with a code that redeems for the agent's token;
# no request leaves the origin; axe-core finds no serious or critical
# violation on any page. Screenshots of every page go to
# target/console-screenshots/.
#
#   scripts/console-tests.sh                          # build if needed, run
#   BRIDLE_BIN=/path/to/bridle scripts/console-tests.sh
#
# Installs what it needs: Chromium from Debian when /usr/bin/chromium is
# missing (as root), Playwright into the project-local .venv
# (scripts/requirements-console.txt; its browser download is never used),
# axe-core into tests/console/node_modules (npm ci from the lockfile).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BRIDLE_BIN:-target/debug/bridle}
REQUIREMENTS=scripts/requirements-console.txt
NODE_DIR=tests/console
SHOTS=target/console-screenshots
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [[ ! -x /usr/bin/chromium ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "console-tests: /usr/bin/chromium is missing (apt-get install chromium)" >&2
        exit 1
    fi
fi
for tool in python3 npm curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "console-tests: \`$tool\` is not installed" >&2
        exit 1
    fi
done

stamp=.venv/.requirements-console.txt
if ! [[ -x .venv/bin/python ]] || ! cmp -s "$REQUIREMENTS" "$stamp"; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$stamp"
fi
node_stamp=$NODE_DIR/node_modules/.console-package-lock.json
if ! cmp -s "$NODE_DIR/package-lock.json" "$node_stamp"; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$NODE_DIR/package-lock.json" "$node_stamp"
fi

if [[ -z "${BRIDLE_BIN:-}" ]]; then
    cargo build --quiet --locked -p bridle
fi

# shellcheck source=scripts/lib/demo.sh
source scripts/lib/demo.sh
start_demo "$BIN"

mkdir -p "$SHOTS"
.venv/bin/python tests/console/browser.py "$base" "$work/demo.log" "$SHOTS" \
    "$NODE_DIR/node_modules/axe-core/axe.min.js"
