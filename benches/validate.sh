#!/usr/bin/env bash
# End-to-end speed and memory of `fwload validate`, each figure next to a
# baseline measured in the same run (cat, wc -l, unzip -p), reported as
# ratios.
#
# Usage, from the repository root:
#
#     benches/validate.sh
#     ROWS=100000 REPS=3 WORK=/tmp/fwload-bench benches/validate.sh
#
# Environment:
#     ROWS        real_acct rows of the archive (default 350000: about
#                 520 MB uncompressed, 9 members)
#     SMALL_ROWS  rows of the second, smaller archive used only for the
#                 memory comparison (default ROWS/4)
#     BIG_ROWS    rows of a bigger plain real_acct.txt, generated alone
#                 from schemas/hcad/real_acct.toml, used only for the
#                 memory comparison (default ROWS*4; 0 skips it)
#     REPS        timed repetitions of each command; the median is
#                 reported (default 5)
#     WORK        work directory (default bench-data/, git-ignored)
#     RESULTS     results directory (default benches/results/)
#
# Steps: `cargo build --release`; `fwload gen --schema schemas/hcad
# --rows ROWS --seed 7` into one zip archive (timed once: gen MB/s of
# uncompressed data written); the archive's biggest member is extracted to
# a plain file. Every command then runs once untimed (to warm the page
# cache) and REPS times timed:
#
#     cat MEMBER > /dev/null          baseline for the plain file
#     wc -l MEMBER                    baseline for the plain file
#     fwload validate -q MEMBER       plain file (memory-mapped)
#     unzip -p ARCHIVE > /dev/null    baseline for the archive
#     fwload validate -q ARCHIVE      the archive (read, members
#                                     streamed)
#     fwload validate -q --no-mmap ARCHIVE   the archive read with read(2)
#
# and the same two validate commands on the SMALL_ROWS archive, and
# validate on that archive's biggest member as a plain file (and on a
# BIG_ROWS real_acct.txt), for peak RSS (`/usr/bin/time -f %M`, KiB,
# median) at two (three) input sizes. (Archives are read, never mapped;
# --no-mmap changes only how plain files are read.)
#
# Prints one line describing the machine (host, nproc, CPU model, memory,
# kernel, date, load average), the build and the input, then a table: MB
# read (for the archive, uncompressed bytes of all members), median
# seconds, MB/s (MB = 10^6 bytes) and, on fwload rows, the ratio of
# fwload's MB/s to the baseline's (1.00 = as fast as the baseline), then
# a small table of peak RSS. The same report plus every raw time is
# written to RESULTS/<date>-<time>-<hostname>.md.
#
# `fwload validate` exits 0 only with zero rejects; generated data without
# --faults has none, so any failure stops the script.

set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

ROWS=${ROWS:-350000}
SMALL_ROWS=${SMALL_ROWS:-$((ROWS / 4))}
BIG_ROWS=${BIG_ROWS:-$((ROWS * 4))}
REPS=${REPS:-5}
WORK=${WORK:-bench-data}
RESULTS=${RESULTS:-benches/results}
SEED=7
SCHEMA=schemas/hcad

if [[ ! -f Cargo.toml || ! -d $SCHEMA ]]; then
    echo "run from the repository root: benches/validate.sh" >&2
    exit 2
fi
if [[ -z ${EPOCHREALTIME:-} ]]; then
    echo "needs bash 5 or later (EPOCHREALTIME)" >&2
    exit 2
fi
for tool in cat wc unzip gzip /usr/bin/time awk sort; do
    command -v "$tool" >/dev/null || {
        echo "missing tool: $tool" >&2
        exit 2
    }
done

cargo build --release --bin fwload
FWLOAD=${CARGO_TARGET_DIR:-target}/release/fwload

mkdir -p "$WORK" "$RESULTS"
TIMES=$(mktemp -d "$WORK/times.XXXXXX")
trap 'rm -rf "$TIMES"' EXIT

# Median of the numbers in file $1.
median() {
    sort -g "$1" | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# timed NAME CMD...: runs CMD (stdout discarded) once untimed, then REPS
# times; appends each run's seconds to $TIMES/NAME.time and, for commands
# starting with $FWLOAD, the peak RSS in KiB to $TIMES/NAME.rss.
timed() {
    local name=$1 t0 t1 i
    shift
    "$@" >/dev/null
    for ((i = 0; i < REPS; i++)); do
        t0=$EPOCHREALTIME
        if [[ $1 == "$FWLOAD" ]]; then
            /usr/bin/time -f %M -o "$TIMES/rss" "$@" >/dev/null
            cat "$TIMES/rss" >>"$TIMES/$name.rss"
        else
            "$@" >/dev/null
        fi
        t1=$EPOCHREALTIME
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }' \
            >>"$TIMES/$name.time"
    done
}

# Uncompressed bytes of all members of zip $1.
zip_bytes() { unzip -l "$1" | awk 'END { print $1 }'; }

# gen ROWS: makes $WORK/hcad-ROWS.zip and prints the wall seconds.
gen() {
    local out=$WORK/hcad-$1.zip t0 t1
    rm -f "$out"
    t0=$EPOCHREALTIME
    "$FWLOAD" gen --schema "$SCHEMA" --rows "$1" --seed "$SEED" \
        --out "$out" >"$TIMES/gen-$1.log"
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "generating $ROWS and $SMALL_ROWS rows into $WORK/ ..." >&2
GEN_SECONDS=$(gen "$ROWS")
ARCHIVE=$WORK/hcad-$ROWS.zip
ARCHIVE_BYTES=$(zip_bytes "$ARCHIVE")
ARCHIVE_FILE_BYTES=$(stat -c %s "$ARCHIVE")
gen "$SMALL_ROWS" >/dev/null
SMALL=$WORK/hcad-$SMALL_ROWS.zip
SMALL_BYTES=$(zip_bytes "$SMALL")
if ((ARCHIVE_BYTES < 500000000)); then
    echo "note: $ARCHIVE holds $ARCHIVE_BYTES bytes, under 500 MB" >&2
fi

# The biggest member, as a plain file named like the member (so that the
# layout's member glob matches it).
read -r MEMBER_BYTES MEMBER < <(unzip -l "$ARCHIVE" |
    awk 'NF == 4 && $1 ~ /^[0-9]+$/ { print $1, $4 }' | sort -n | tail -1)
mkdir -p "$WORK/plain"
PLAIN=$WORK/plain/$MEMBER
unzip -p "$ARCHIVE" "$MEMBER" >"$PLAIN"
mkdir -p "$WORK/plain-small"
PLAIN_SMALL=$WORK/plain-small/$MEMBER
unzip -p "$SMALL" "$MEMBER" >"$PLAIN_SMALL"
PLAIN_SMALL_BYTES=$(stat -c %s "$PLAIN_SMALL")
if ((BIG_ROWS > 0)); then
    echo "generating $BIG_ROWS rows of real_acct.txt ..." >&2
    mkdir -p "$WORK/plain-big"
    PLAIN_BIG=$WORK/plain-big/real_acct.txt
    rm -f "$PLAIN_BIG.gz"
    "$FWLOAD" gen --schema "$SCHEMA/real_acct.toml" --rows "$BIG_ROWS" \
        --seed "$SEED" --out "$PLAIN_BIG.gz" >/dev/null
    gzip -dc "$PLAIN_BIG.gz" >"$PLAIN_BIG"
    rm -f "$PLAIN_BIG.gz"
    PLAIN_BIG_BYTES=$(stat -c %s "$PLAIN_BIG")
fi

cat_plain() { cat "$PLAIN" >/dev/null; }
wc_plain() { wc -l "$PLAIN" >/dev/null; }
unzip_archive() { unzip -p "$ARCHIVE" >/dev/null; }

echo "timing, $REPS repetitions each ..." >&2
timed cat cat_plain
timed wc wc_plain
timed validate_plain "$FWLOAD" validate --schema "$SCHEMA" -q "$PLAIN"
timed unzip unzip_archive
timed validate_zip "$FWLOAD" validate --schema "$SCHEMA" -q "$ARCHIVE"
timed validate_zip_nommap "$FWLOAD" validate --schema "$SCHEMA" -q \
    --no-mmap "$ARCHIVE"
timed validate_small "$FWLOAD" validate --schema "$SCHEMA" -q "$SMALL"
timed validate_small_nommap "$FWLOAD" validate --schema "$SCHEMA" -q \
    --no-mmap "$SMALL"
timed validate_plain_small "$FWLOAD" validate --schema "$SCHEMA" -q \
    "$PLAIN_SMALL"
if ((BIG_ROWS > 0)); then
    timed validate_plain_big "$FWLOAD" validate --schema "$SCHEMA" -q \
        "$PLAIN_BIG"
fi

# Figures.
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

for n in cat wc validate_plain unzip validate_zip validate_zip_nommap; do
    printf -v "S_$n" '%s' "$(median "$TIMES/$n.time")"
done
M_cat=$(mbps "$MEMBER_BYTES" "$S_cat")
M_wc=$(mbps "$MEMBER_BYTES" "$S_wc")
M_vp=$(mbps "$MEMBER_BYTES" "$S_validate_plain")
M_unzip=$(mbps "$ARCHIVE_BYTES" "$S_unzip")
M_vz=$(mbps "$ARCHIVE_BYTES" "$S_validate_zip")
M_vzn=$(mbps "$ARCHIVE_BYTES" "$S_validate_zip_nommap")
M_gen=$(mbps "$ARCHIVE_BYTES" "$GEN_SECONDS")
R_vp_cat=$(ratio "$M_vp" "$M_cat")
R_vp_wc=$(ratio "$M_vp" "$M_wc")
R_vz_unzip=$(ratio "$M_vz" "$M_unzip")
R_vzn_unzip=$(ratio "$M_vzn" "$M_unzip")
RSS_plain=$(median "$TIMES/validate_plain.rss")
RSS_plain_small=$(median "$TIMES/validate_plain_small.rss")
RSS_big=$(median "$TIMES/validate_zip.rss")
RSS_small=$(median "$TIMES/validate_small.rss")
RSS_big_n=$(median "$TIMES/validate_zip_nommap.rss")
RSS_small_n=$(median "$TIMES/validate_small_nommap.rss")

CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
HOST=$(hostname -s 2>/dev/null || hostname)
WHEN=$(date '+%Y-%m-%d %H:%M:%S %Z')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
VERSION=$("$FWLOAD" --version)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi

report() {
    echo "machine: $HOST, nproc $(nproc), $CPU, $MEM, Linux $(uname -r);" \
        "$WHEN; load average $LOAD_START at start, $LOAD at end"
    echo "build: $VERSION, commit $COMMIT"
    echo "archive: $ARCHIVE, gen --rows $ROWS --seed $SEED:" \
        "$(mb "$ARCHIVE_BYTES") MB uncompressed, $(mb "$ARCHIVE_FILE_BYTES") MB zip;" \
        "biggest member $MEMBER, $(mb "$MEMBER_BYTES") MB"
    echo "median of $REPS runs, warm page cache; ratio = fwload MB/s / baseline MB/s"
    echo
    row() {
        printf '%-42s %8s %8s %6s' "$1" "$2" "$3" "$4"
        if [[ -n ${5:-} ]]; then printf '  %s' "$5"; fi
        echo
    }
    row command MB seconds MB/s ratio
    row "cat $MEMBER > /dev/null" "$(mb "$MEMBER_BYTES")" "$S_cat" "$M_cat"
    row "wc -l $MEMBER" "$(mb "$MEMBER_BYTES")" "$S_wc" "$M_wc"
    row "fwload validate $MEMBER" "$(mb "$MEMBER_BYTES")" \
        "$S_validate_plain" "$M_vp" "validate/cat $R_vp_cat, validate/wc $R_vp_wc"
    if ((BIG_ROWS > 0)); then
        local s_big
        s_big=$(median "$TIMES/validate_plain_big.time")
        row "fwload validate $MEMBER ($BIG_ROWS rows)" \
            "$(mb "$PLAIN_BIG_BYTES")" "$s_big" \
            "$(mbps "$PLAIN_BIG_BYTES" "$s_big")"
    fi
    row "unzip -p ${ARCHIVE##*/} > /dev/null" "$(mb "$ARCHIVE_BYTES")" \
        "$S_unzip" "$M_unzip"
    row "fwload validate ${ARCHIVE##*/}" "$(mb "$ARCHIVE_BYTES")" \
        "$S_validate_zip" "$M_vz" "validate/unzip $R_vz_unzip"
    row "fwload validate --no-mmap ${ARCHIVE##*/}" "$(mb "$ARCHIVE_BYTES")" \
        "$S_validate_zip_nommap" "$M_vzn" "validate/unzip $R_vzn_unzip"
    row "fwload gen (1 run)" "$(mb "$ARCHIVE_BYTES")" "$GEN_SECONDS" "$M_gen"
    echo
    echo "peak RSS of fwload validate, KiB (median of $REPS):"
    printf '  %-22s %24s %24s %8s\n' "input (MB)" \
        "${SMALL##*/} ($(mb "$SMALL_BYTES"))" \
        "${ARCHIVE##*/} ($(mb "$ARCHIVE_BYTES"))" growth
    printf '  %-22s %24s %24s %8s\n' "archive (mmap)" "$RSS_small" \
        "$RSS_big" "x$(ratio "$RSS_big" "$RSS_small")"
    printf '  %-22s %24s %24s %8s\n' "archive (--no-mmap)" "$RSS_small_n" \
        "$RSS_big_n" "x$(ratio "$RSS_big_n" "$RSS_small_n")"
    echo "  (input grows x$(ratio "$ARCHIVE_BYTES" "$SMALL_BYTES"))"
    printf '  %-22s %24s %24s %8s\n' "plain $MEMBER (MB)" \
        "$(mb "$PLAIN_SMALL_BYTES")" "$(mb "$MEMBER_BYTES")" \
        "x$(ratio "$MEMBER_BYTES" "$PLAIN_SMALL_BYTES")"
    printf '  %-22s %24s %24s %8s\n' "plain (mmap)" "$RSS_plain_small" \
        "$RSS_plain" "x$(ratio "$RSS_plain" "$RSS_plain_small")"
    if ((BIG_ROWS > 0)); then
        local big
        big=$(median "$TIMES/validate_plain_big.rss")
        printf '  %-22s %24s %24s %8s\n' "plain $MEMBER (MB)" \
            "$(mb "$MEMBER_BYTES")" "$(mb "$PLAIN_BIG_BYTES")" \
            "x$(ratio "$PLAIN_BIG_BYTES" "$MEMBER_BYTES")"
        printf '  %-22s %24s %24s %8s\n' "plain (mmap)" "$RSS_plain" \
            "$big" "x$(ratio "$big" "$RSS_plain")"
    fi
}

raw() {
    echo '## Raw'
    echo
    echo "Seconds per run (each after one untimed warm-up run); RSS in KiB."
    echo
    echo '```'
    for f in "$TIMES"/*.time "$TIMES"/*.rss; do
        printf '%-28s %s\n' "${f##*/}" "$(paste -sd' ' "$f")"
    done
    echo "gen.seconds                  $GEN_SECONDS"
    echo "bytes: member $MEMBER_BYTES, archive uncompressed $ARCHIVE_BYTES," \
        "archive file $ARCHIVE_FILE_BYTES, small archive uncompressed $SMALL_BYTES," \
        "small plain member $PLAIN_SMALL_BYTES"
    echo '```'
    echo
    echo "fwload gen --rows $ROWS output:"
    echo
    echo '```'
    cat "$TIMES/gen-$ROWS.log"
    echo '```'
}

report
OUT=$RESULTS/$(date +%Y-%m-%d-%H%M%S)-$HOST.md
{
    echo "# benches/validate.sh, $WHEN, $HOST"
    echo
    echo '```'
    report
    echo '```'
    echo
    raw
} >"$OUT"
echo
echo "results: $OUT"
