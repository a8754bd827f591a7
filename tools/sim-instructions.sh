#!/usr/bin/env bash
# Instructions the simulator spends per scheduling event, counted by valgrind (deterministic, so
# two builds can be compared on a loaded machine, unlike timings). Runs the `speed` example
# twice under `valgrind --tool=cachegrind` with two sizes of the same workload and divides the
# difference in instructions by the difference in scheduling events, which cancels the setup
# (building the machine, the tier tables).
#
# Usage: tools/sim-instructions.sh SPEED_BINARY PRESET WORKLOAD PARAM SMALL LARGE
#   e.g. tools/sim-instructions.sh target/release/examples/speed ring-1024 server requests 25000 75000
# Build the binary with `cargo build --release -p manycore-sim --example speed`.
set -euo pipefail
if [ $# -ne 6 ]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi
bin=$1 preset=$2 workload=$3 param=$4 small=$5 large=$6
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {
    # Prints "<scheduling events> <instructions>" for one run of size $1.
    local events
    events=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out/cg.$1" \
        "$bin" "$preset" "$workload" topology "$param=$1" 2>&1 |
        grep -oE '[0-9]+ scheduling events in' | grep -oE '^[0-9]+')
    echo "$events $(awk '/^summary:/ {print $2}' "$out/cg.$1")"
}
read -r e1 i1 < <(run "$small")
read -r e2 i2 < <(run "$large")
echo "$preset $workload: scheduling events $e1 -> $e2, instructions $i1 -> $i2:" \
    "$(( (i2 - i1) / (e2 - e1) )) instructions per scheduling event"
