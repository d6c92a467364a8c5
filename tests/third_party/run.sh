#!/usr/bin/env bash
# Runs HashiCorp's Python SDK (pytfe) and terrasnek, unmodified, through a full policy lifecycle
# against `tfe-policy-sync emulator`, then checks that the emulator exits 0 on SIGTERM.
#
# Needs python3 with venv and pip, and PyPI. The virtualenv is kept in target/third-party-venv.
# Usage: tests/third_party/run.sh   (from anywhere; builds the binary first)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv="$target/third-party-venv"

# PyPI (and a Python with venv) are the outside dependencies of this check: without them, say
# so and skip, rather than fail the product's CI for a missing tool or a network problem.
if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv"; then
    echo "third-party clients skipped: python3 -m venv failed" >&2
    exit 0
fi
if ! "$venv/bin/pip" install --quiet --disable-pip-version-check pytfe==1.5.0 terrasnek==0.1.14; then
    echo "third-party clients skipped: could not install pytfe and terrasnek from PyPI" >&2
    exit 0
fi

(cd "$root" && cargo build --quiet --locked --bin tfe-policy-sync)

workdir=$(mktemp -d)
token="third-party-$$-$RANDOM"
"$target/debug/tfe-policy-sync" emulator --listen 127.0.0.1:0 --token "$token" \
    --download-redirect >"$workdir/stdout" 2>"$workdir/stderr" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

for _ in $(seq 1000); do
    [ -s "$workdir/stdout" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$workdir/stderr" >&2; exit 1; }
    sleep 0.01
done
line=$(head -n 1 "$workdir/stdout")
case "$line" in
    "listening on http://"*) url=${line#listening on } ;;
    *) echo "unexpected first line from the emulator: $line" >&2; exit 1 ;;
esac

"$venv/bin/python" "$here/lifecycle.py" "$url" "$token" my-organization

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
if [ "$status" -ne 0 ]; then
    echo "the emulator exited $status after SIGTERM, expected 0" >&2
    exit 1
fi
echo "third-party: 2 passed, 0 failed"
