#!/usr/bin/env bash
# Load benchmark: `fwload load` against PostgreSQL's own COPY, in one run.
#
#   benches/load.sh                 # ROWS=1000000, BIG_ROWS=4000000, REPS=3
#   ROWS=200000 BIG_ROWS=800000 REPS=1 benches/load.sh
#
# Needs a PostgreSQL server on this machine (server-side COPY reads files
# the server can open): DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test.
#
# Measures, each as the median of REPS runs:
#   (a) PostgreSQL's own server-side `COPY table FROM 'file'` of the same
#       rows (exported as text from a loaded copy) into the same typed tables
#       (keys included): (a1) in one session, (a2) in two sessions in
#       parallel like fwload's --jobs 2;
#   (b) `fwload load` of the generated archive into empty targets;
#   (c) `fwload load --delete hard` of a 1% change set (1% updated, 0.5%
#       deleted, 1% inserted) into the populated targets;
# prints b/a1, b/a2, c/a1 and c/a2, and the peak RSS of (b) at ROWS and
# BIG_ROWS.
# Results are also written to benches/results/load-<date>-<host>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
BIG_ROWS=${BIG_ROWS:-4000000}
REPS=${REPS:-3}
URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export PGOPTIONS='-c client_min_messages=warning'
WORK=${WORK:-bench-data/load}
TSV=${TSV:-/tmp/fwload-bench-tsv}
SCHEMA=schemas/hcad

cargo build --release -q
F=target/release/fwload
mkdir -p "$WORK" benches/results
rm -rf "$TSV" && mkdir -p "$TSV" && chmod 777 "$TSV"

q() { psql "$URL" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
tables=$($F schema ddl --schema $SCHEMA --target-schema x | sed -nE 's/^CREATE TABLE "x"\."([a-z_]+)".*/\1/p')

reset() { q "DROP SCHEMA IF EXISTS $1 CASCADE; DROP SCHEMA IF EXISTS $1_meta CASCADE; CREATE SCHEMA $1"; }
# bench_a with the typed tables (keys and indexes), empty.
empty_baseline() {
    reset bench_a
    "$F" schema ddl --schema $SCHEMA --target-schema bench_a | psql "$URL" -v ON_ERROR_STOP=1 -q
}
fw() { "$F" load -q --schema $SCHEMA --database-url "$URL" --target-schema "$1" --meta-schema "$1_meta" --jobs 2 "${@:2}"; }

echo "== generating ($ROWS rows of real_acct, children in proportion)"
[ -f "$WORK/base-$ROWS.zip" ] || "$F" gen --schema $SCHEMA --rows "$ROWS" --seed 7 --out "$WORK/base-$ROWS.zip" | tail -1
[ -f "$WORK/next-$ROWS.zip" ] || "$F" gen --schema $SCHEMA --base "$WORK/base-$ROWS.zip" --update 1% --delete 0.5% --insert 1% \
    --seed 8 --out "$WORK/next-$ROWS.zip" --manifest "$WORK/next-$ROWS.json" | tail -1
bytes=$(unzip -l "$WORK/base-$ROWS.zip" | tail -1 | awk '{print $1}')

echo "== exporting the same rows as text for PostgreSQL's COPY"
reset bench_src
fw bench_src --create "$WORK/base-$ROWS.zip" > /dev/null
rows=0
for t in $tables; do
    q "COPY bench_src.$t TO '$TSV/$t.tsv'"
    rows=$((rows + $(q "SELECT count(*) FROM bench_src.$t")))
done

declare -a A1 A2 B C
for r in $(seq "$REPS"); do
    echo "== rep $r/$REPS"
    # (a1) PostgreSQL's own COPY, one session.
    empty_baseline
    all=""
    for t in $tables; do all="$all COPY bench_a.$t FROM '$TSV/$t.tsv';"; done
    t0=$(now); q "$all"; A1[$r]=$(echo "$(now) - $t0" | bc)
    # (a2) PostgreSQL's own COPY, two sessions like --jobs 2.
    empty_baseline
    half1=""; half2=""; i=0
    for t in $tables; do
        if [ $((i % 2)) -eq 0 ]; then half1="$half1 COPY bench_a.$t FROM '$TSV/$t.tsv';"; else half2="$half2 COPY bench_a.$t FROM '$TSV/$t.tsv';"; fi
        i=$((i + 1))
    done
    t0=$(now)
    q "$half1" & p1=$!
    q "$half2" & p2=$!
    wait $p1 $p2
    A2[$r]=$(echo "$(now) - $t0" | bc)
    # (b) fwload into empty targets.
    reset bench_b
    t0=$(now); fw bench_b --create "$WORK/base-$ROWS.zip" > /dev/null; B[$r]=$(echo "$(now) - $t0" | bc)
    # (c) fwload of a 1% change set into populated targets.
    reset bench_c
    fw bench_c --create "$WORK/base-$ROWS.zip" > /dev/null
    t0=$(now); fw bench_c --delete hard "$WORK/next-$ROWS.zip" > /dev/null; C[$r]=$(echo "$(now) - $t0" | bc)
    echo "   a1=${A1[$r]} s  a2=${A2[$r]} s  b=${B[$r]} s  c=${C[$r]} s"
done
a1=$(printf '%s\n' "${A1[@]}" | median)
a2=$(printf '%s\n' "${A2[@]}" | median)
b=$(printf '%s\n' "${B[@]}" | median)
c=$(printf '%s\n' "${C[@]}" | median)

echo "== peak RSS of fwload load at $ROWS and $BIG_ROWS rows"
rss() {
    reset bench_rss
    /usr/bin/time -f %M "$F" load -q --schema $SCHEMA --database-url "$URL" --target-schema bench_rss --meta-schema bench_rss_meta --create "$1" 2>&1 >/dev/null | tail -1
}
rss_small=$(rss "$WORK/base-$ROWS.zip")
[ -f "$WORK/base-$BIG_ROWS.zip" ] || "$F" gen --schema $SCHEMA --rows "$BIG_ROWS" --seed 7 --out "$WORK/base-$BIG_ROWS.zip" | tail -1
rss_big=$(rss "$WORK/base-$BIG_ROWS.zip")

for s in bench_src bench_a bench_b bench_c bench_rss; do q "DROP SCHEMA IF EXISTS $s CASCADE; DROP SCHEMA IF EXISTS ${s}_meta CASCADE"; done
rm -rf "$TSV"

machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(psql "$URL" -qAt -c 'SHOW server_version'), $(date -u +%Y-%m-%d)"
# One line of the table: name, seconds, MB/s and the time against a1 and a2.
row() {
    printf '| %s | %s | %s | %s | %s |' "$1" "$2" "$(echo "$bytes / 1000000 / $2" | bc)" \
        "$(echo "scale=2; $2 / $a1" | bc)" "$(echo "scale=2; $2 / $a2" | bc)"
}
report=$(cat <<EOF
load benchmark: $ROWS rows of real_acct, $rows rows in all, $((bytes / 1000000)) MB uncompressed, median of $REPS
machine: $machine

| measure | seconds | MB/s | time / a1 | time / a2 |
| --- | ---: | ---: | ---: | ---: |
$(row "(a1) PostgreSQL COPY FROM file (text, 1 session)" "$a1")
$(row "(a2) PostgreSQL COPY FROM file (text, 2 sessions)" "$a2")
$(row "(b) fwload load into empty targets" "$b")
$(row "(c) fwload load of a 1% change set" "$c")

peak RSS of fwload load: $((rss_small / 1024)) MiB at $ROWS rows, $((rss_big / 1024)) MiB at $BIG_ROWS rows
EOF
)
echo
echo "$report"
echo "$report" > "benches/results/load-$(date -u +%Y%m%d)-$(hostname).md"
