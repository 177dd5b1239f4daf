#!/usr/bin/env bash
# Fetches the pinned htmx release from the npm registry (with npm itself),
# checks the tarball against its pinned SHA-512 integrity, and writes the
# minified file the console embeds (crates/bridle-server/static/). Run it
# only to move to another version: change both pins, run, commit the file.
#
#   scripts/vendor-htmx.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.0.4
INTEGRITY=sha512-HLxMCdfXDOJirs3vBZl/ZLoY+c7PfM4Ahr2Ad4YXh6d22T5ltbTXFFkpx9Tgb2vvmWFMbIc3LqN2ToNkZJvyYQ==
OUT=crates/bridle-server/static/htmx.min.js

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$VERSION" >/dev/null)
tarball="$work/htmx.org-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$actual" != "$INTEGRITY" ]]; then
    echo "vendor-htmx: integrity mismatch for htmx.org@$VERSION: $actual" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$work" package/dist/htmx.min.js
cp "$work/package/dist/htmx.min.js" "$OUT"
echo "vendor-htmx: htmx.org@$VERSION → $OUT ($(wc -c <"$OUT") bytes)"
