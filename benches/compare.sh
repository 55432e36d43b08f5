#!/usr/bin/env bash
# Two builds of fwload validating the same file, run alternately so that
# both see the same machine: the median wall time and whole-process CPU
# (user + system) of each, and their ratios. On a shared machine whose
# speed drifts, this measures a change better than two separate runs.
#
# Usage, from the repository root:
#
#     benches/compare.sh OLD_BINARY NEW_BINARY [RUNS] [FILE] [SCHEMA]
#
# RUNS defaults to 11; FILE to bench-data/plain/real_acct.txt (made by
# benches/validate.sh); SCHEMA to schemas/hcad.
set -euo pipefail

old=${1:?usage: benches/compare.sh OLD_BINARY NEW_BINARY [RUNS] [FILE] [SCHEMA]}
new=${2:?usage: benches/compare.sh OLD_BINARY NEW_BINARY [RUNS] [FILE] [SCHEMA]}
runs=${3:-11}
file=${4:-bench-data/plain/real_acct.txt}
schema=${5:-schemas/hcad}
[[ -f $file ]] || { echo "no $file: run benches/validate.sh first" >&2; exit 2; }

times=$(mktemp)
trap 'rm -f "$times"' EXIT
# Bash's own `time` reports to the millisecond (GNU time to the
# centisecond, too coarse for changes of a few percent).
TIMEFORMAT='%3R %3U %3S'
for _ in $(seq "$runs"); do
    for which in old new; do
        bin=${!which}
        t=$({ time "$bin" validate --schema "$schema" -q "$file" \
            >/dev/null 2>&1; } 2>&1) || {
            echo "$bin failed on $file" >&2
            exit 1
        }
        echo "$which $t" >>"$times"
    done
done

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
declare -A wall cpu
for which in old new; do
    wall[$which]=$(awk -v w=$which '$1 == w {print $2}' "$times" | median)
    cpu[$which]=$(awk -v w=$which '$1 == w {print $3 + $4}' "$times" | median)
done
mb=$(awk -v b="$(stat -c %s "$file")" 'BEGIN {printf "%.1f", b / 1e6}')
echo "$file, $mb MB; median of $runs alternating runs each"
for which in old new; do
    printf '%-4s wall %6.3f s  cpu %6.3f s  %5.0f MB/s\n' "$which" \
        "${wall[$which]}" "${cpu[$which]}" \
        "$(awk -v m="$mb" -v w="${wall[$which]}" 'BEGIN {print m / w}')"
done
awk -v ow="${wall[old]}" -v nw="${wall[new]}" -v oc="${cpu[old]}" \
    -v nc="${cpu[new]}" \
    'BEGIN {printf "new/old: wall %.3f, cpu %.3f\n", nw / ow, nc / oc}'
