#!/usr/bin/env bash
# Time benchmark: what keeping the undo of a run costs a 1% change-set
# load, against the same load without it, in one run.
#
#   benches/undo.sh                     # ROWS=1000000, REPS=3
#   ROWS=100000 REPS=5 benches/undo.sh
#   BASELINE=path/to/other/fwload benches/undo.sh   # also time another build
#   FWLOAD=path/to/fwload benches/undo.sh           # time that build
#
# Needs a PostgreSQL server: DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/test.
#
# The targets hold the base snapshot. Each rep, alternating:
#   (u) `load --delete hard` of the change set (1% updated, 0.5% deleted,
#       1% inserted), keeping its undo (the default);
#   (n) the same load with `--keep-undo 0`;
#   (b) with BASELINE set, the same load by that build;
# each followed (untimed) by a load of the base snapshot with
# `--delete hard`, which puts the targets back. Prints the medians, u/n
# (and n/b), and the undo rows kept per change-set load.
# Results are also written to benches/results/undo-<date>-<host>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
REPS=${REPS:-3}
URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export PGOPTIONS='-c client_min_messages=warning'
WORK=${WORK:-bench-data/load}
SCHEMA=schemas/hcad
S=bench_undo

# FWLOAD: a build to time instead of this checkout's.
if [ -z "${FWLOAD:-}" ]; then cargo build --release -q; fi
F=${FWLOAD:-target/release/fwload}
mkdir -p "$WORK" benches/results

q() { psql "$URL" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
fw() {
    local bin=$1
    shift
    "$bin" load -q --schema $SCHEMA --database-url "$URL" --target-schema $S \
        --meta-schema ${S}_meta --jobs 2 --max-delete-ratio 0.5 "$@"
}
timed() { local t0; t0=$(now); "$@" > /dev/null; echo "$(now) - $t0" | bc; }

echo "== generating ($ROWS rows of real_acct, children in proportion)"
[ -f "$WORK/base-$ROWS.zip" ] || "$F" gen --schema $SCHEMA --rows "$ROWS" --seed 7 --out "$WORK/base-$ROWS.zip" | tail -1
[ -f "$WORK/next-$ROWS.zip" ] || "$F" gen --schema $SCHEMA --base "$WORK/base-$ROWS.zip" --update 1% --delete 0.5% --insert 1% \
    --seed 8 --out "$WORK/next-$ROWS.zip" --manifest "$WORK/next-$ROWS.json" | tail -1
BASE=$WORK/base-$ROWS.zip
NEXT=$WORK/next-$ROWS.zip

q "DROP SCHEMA IF EXISTS $S CASCADE; DROP SCHEMA IF EXISTS ${S}_meta CASCADE"
echo "== base load"
fw "$F" --create --keep-undo 0 "$BASE" > /dev/null
back() { fw "$F" --delete hard --keep-undo 0 --force-reload "$BASE" > /dev/null; }

declare -a U N B
for r in $(seq "$REPS"); do
    echo "== rep $r/$REPS"
    U[$r]=$(timed fw "$F" --delete hard --force-reload "$NEXT")
    undo_rows=$(q "SELECT count(*) FROM ${S}_meta.undo_rows WHERE run_id = (SELECT max(run_id) FROM ${S}_meta.undo_rows)")
    back
    N[$r]=$(timed fw "$F" --delete hard --force-reload --keep-undo 0 "$NEXT")
    back
    if [ -n "${BASELINE:-}" ]; then
        B[$r]=$(timed fw "$BASELINE" --delete hard --force-reload "$NEXT")
        back
    fi
    echo "   undo ${U[$r]} s, none ${N[$r]} s${BASELINE:+, baseline ${B[$r]} s}"
done

mu=$(printf '%s\n' "${U[@]}" | median)
mn=$(printf '%s\n' "${N[@]}" | median)
out="benches/results/undo-$(date +%Y-%m-%d-%H%M)-$(hostname -s).md"
{
    echo "# undo cost, $ROWS accounts, 1% change set, median of $REPS alternating runs"
    echo
    echo "| load | median s | runs |"
    echo "| --- | --- | --- |"
    echo "| keeping undo (default) | $mu | ${U[*]} |"
    echo "| --keep-undo 0 | $mn | ${N[*]} |"
    if [ -n "${BASELINE:-}" ]; then
        mb=$(printf '%s\n' "${B[@]}" | median)
        echo "| baseline build | $mb | ${B[*]} |"
        echo
        echo "none/baseline: $(echo "scale=3; $mn / $mb" | bc)"
    fi
    echo
    echo "undo/none: $(echo "scale=3; $mu / $mn" | bc); undo rows kept per load: $undo_rows"
} | tee "$out"
