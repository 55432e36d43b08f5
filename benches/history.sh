#!/usr/bin/env bash
# Time benchmark: history loads against merge loads, and a year's load
# into tables that hold earlier years against a first load, in one run.
#
#   benches/history.sh                  # ROWS=1000000, REPS=3
#   ROWS=100000 REPS=3 benches/history.sh
#   PERIODS=0 benches/history.sh        # history against merge only
#
# Needs a PostgreSQL server: DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/test.
#
# Measures, each as the median of REPS alternating runs:
#   (m) `load --delete hard` of a 1% change set (1% updated, 0.5% deleted,
#       1% inserted) into targets holding the base snapshot;
#   (h) the same change set with `--mode history` into history targets
#       holding the base snapshot as their first versions; prints h/m and
#       the versions written (closed + opened) against the rows changed;
#   (p0) a first load of one year into empty tables kept by year;
#   (p1), (p5) the load of the next year into tables holding 1 and 5
#       years; prints p1/p0 and p5/p0.
# Results are also written to benches/results/history-<date>-<host>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
REPS=${REPS:-3}
PERIODS=${PERIODS:-1}
URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export PGOPTIONS='-c client_min_messages=warning'
WORK=${WORK:-bench-data/load}
SCHEMA=schemas/hcad

cargo build --release -q
F=target/release/fwload
mkdir -p "$WORK" benches/results

q() { psql "$URL" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
reset() { q "DROP SCHEMA IF EXISTS $1 CASCADE; DROP SCHEMA IF EXISTS $1_meta CASCADE"; }
fw() {
    local s=$1 schema=$2
    shift 2
    "$F" load -q --schema "$schema" --database-url "$URL" --target-schema "$s" \
        --meta-schema "${s}_meta" --jobs 2 "$@"
}
timed() { local t0; t0=$(now); "$@" > /dev/null; echo "$(now) - $t0" | bc; }
# Rows of every table of schema $1 (versions, for history targets) that
# meet condition $2.
all_rows() {
    q "SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I WHERE ${2:-true}', n.nspname, c.relname), false, true, '')))[1]::text::bigint), 0)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = '$1' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
}

echo "== generating ($ROWS rows of real_acct, children in proportion)"
[ -f "$WORK/base-$ROWS.zip" ] || "$F" gen --schema $SCHEMA --rows "$ROWS" --seed 7 --out "$WORK/base-$ROWS.zip" | tail -1
[ -f "$WORK/next-$ROWS.zip" ] || "$F" gen --schema $SCHEMA --base "$WORK/base-$ROWS.zip" --update 1% --delete 0.5% --insert 1% \
    --seed 8 --out "$WORK/next-$ROWS.zip" --manifest "$WORK/next-$ROWS.json" | tail -1
BASE=$WORK/base-$ROWS.zip
NEXT=$WORK/next-$ROWS.zip

# The same schemas kept by year.
BY_YEAR=$WORK/hcad-by-year
rm -rf "$BY_YEAR" && cp -r $SCHEMA "$BY_YEAR"
printf '\n[period]\ncolumn = "roll_year"\nfrom = "year"\n' >> "$BY_YEAR/dataset.toml"

declare -a M H P0 P1 P5
written=0
for r in $(seq "$REPS"); do
    echo "== rep $r/$REPS"
    reset bench_m
    fw bench_m $SCHEMA --create "$BASE" > /dev/null
    M[$r]=$(timed fw bench_m $SCHEMA --delete hard "$NEXT")
    reset bench_h
    fw bench_h $SCHEMA --mode history --create --as-of 2024-01-01 "$BASE" > /dev/null
    before=$(all_rows bench_h)
    H[$r]=$(timed fw bench_h $SCHEMA --mode history --as-of 2024-02-01 --delete hard "$NEXT")
    after=$(all_rows bench_h)
    closed=$(all_rows bench_h "valid_to IS NOT NULL")
    written="versions opened $((after - before)), closed $closed (all tables)"
    echo "   merge ${M[$r]} s, history ${H[$r]} s; $written"

    [ "$PERIODS" = 1 ] || continue
    reset bench_p
    P0[$r]=$(timed fw bench_p "$BY_YEAR" --create --year 2001 "$BASE")
    P1[$r]=$(timed fw bench_p "$BY_YEAR" --create --year 2002 "$BASE")
    for y in 2003 2004 2005; do fw bench_p "$BY_YEAR" --create --year $y "$BASE" > /dev/null; done
    P5[$r]=$(timed fw bench_p "$BY_YEAR" --create --year 2006 "$BASE")
    echo "   first year ${P0[$r]} s, after 1 year ${P1[$r]} s, after 5 years ${P5[$r]} s"
done
reset bench_m; reset bench_h; reset bench_p

m=$(printf '%s\n' "${M[@]}" | median)
h=$(printf '%s\n' "${H[@]}" | median)
if [ "$PERIODS" = 1 ]; then
    p0=$(printf '%s\n' "${P0[@]}" | median)
    p1=$(printf '%s\n' "${P1[@]}" | median)
    p5=$(printf '%s\n' "${P5[@]}" | median)
fi
changed=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(sum(len(t["updated"]) + len(t["deleted"]) + t["deleted_with_parent"] + len(t["inserted"]) for t in m["tables"]))' "$WORK/next-$ROWS.json")
out=benches/results/history-$(date +%F-%H%M)-$(hostname).md
{
    echo "# history and periods, $ROWS accounts, $REPS reps (medians, seconds)"
    echo
    echo "| load | seconds | ratio |"
    echo "| --- | ---: | ---: |"
    echo "| merge of the 1% change set | $m | 1 |"
    echo "| history of the 1% change set | $h | $(echo "scale=2; $h / $m" | bc) |"
    if [ "$PERIODS" = 1 ]; then
        echo "| first year into empty tables | $p0 | 1 |"
        echo "| next year, tables hold 1 year | $p1 | $(echo "scale=2; $p1 / $p0" | bc) |"
        echo "| next year, tables hold 5 years | $p5 | $(echo "scale=2; $p5 / $p0" | bc) |"
    fi
    echo
    echo "History run: $written; rows the change set changed (generator manifest): $changed."
} | tee "$out"
