#!/usr/bin/env bash
# Regenerate leaderboards/ from real runs: for each published grid, run -> export -> publish.
#
#   scripts/regenerate_leaderboards.sh              # the published grids (hours on a CPU; run on a quiet machine)
#   GRID=smoke OUT=/tmp/lb scripts/regenerate_leaderboards.sh   # the same path on a tiny grid, seconds
#
# A protocol may be published from several bundles (several grids of it), each its own run: quick
# is (a) ngram and categorical x every registered mixer x SEEDS seeds and (b) gpt-tiny x GPT_MIXERS
# x GPT_SEEDS seeds, because gpt-tiny under every mixer costs hours more than the rest together.
#
# Environment: SEEDS (default 5), THEORY_SEEDS (theory, gerstgrasser2024 and qiao2025-gaussian, whose
# own default is 10: BCa intervals), GPT_SEEDS (quick's gpt-tiny and
# shakespeare-gpt, default 3), GPT_MIXERS (quick's gpt-tiny, default "replace accumulate"), JOBS
# (worker processes per run, default 2), RUNS (runs, default runs/leaderboards), OUT (the
# leaderboard folder, default leaderboards), EMBED (markdown files whose leaderboard markers are
# refreshed, default README.md, none for GRID=smoke). The leaderboard is built in a fresh folder and
# replaces OUT only when every grid published.
set -euo pipefail
cd "$(dirname "$0")/.."
GRID=${GRID:-full}
SEEDS=${SEEDS:-5}
GPT_SEEDS=${GPT_SEEDS:-3}
GPT_MIXERS=${GPT_MIXERS:-replace accumulate}
THEORY_SEEDS=${THEORY_SEEDS:-10}
JOBS=${JOBS:-2}
RUNS=${RUNS:-runs/leaderboards}
OUT=${OUT:-leaderboards}
if [ "$GRID" = smoke ]; then EMBED=${EMBED-}; else EMBED=${EMBED-README.md}; fi
NEW="$OUT.new"
rm -rf "$NEW"
mkdir -p "$RUNS" "$NEW"

# Every registered mixer, the curation mixers included, with its default parameters.
MIXERS=$(python -c "from collapse_bench.plugins import get_registry as r; print(' '.join(e.name for e in r().entries('mixer')))")
KNOWN=$(python -c "from collapse_bench.plugins import get_registry as r; print(' '.join(e.name for e in r().entries('protocol')))")

# grid PROTOCOL NAME SEEDS [run options...]: run NAME (resumable: finished steps come from the
# cache; a run already complete is kept), export it as a bundle, publish it. NAME tells apart the
# grids of one protocol.
grid() {
    local protocol=$1 name=$2 seeds=$3
    shift 3
    if [[ " $KNOWN " != *" $protocol "* ]]; then
        echo "skipped $protocol: not a registered protocol" >&2
        return
    fi
    if ! grep -qs '"status": "complete"' "$RUNS/$name-$seeds/manifest.json"; then
        collapse-bench run -p "$protocol" "$@" --seeds "$seeds" --jobs "$JOBS" --out "$RUNS" --run-id "$name-$seeds" -q
    fi
    collapse-bench export "$RUNS/$name-$seeds" -o "$RUNS/$name-$seeds.json"
    collapse-bench publish "$RUNS/$name-$seeds.json" --to "$NEW"
}

# --mixer M for each word of $1
mixers() { for m in $1; do printf -- '--mixer\n%s\n' "$m"; done; }

if [ "$GRID" = smoke ]; then
    # Two bundles of one protocol with different entries, as quick is published.
    mapfile -t two < <(mixers "replace accumulate")
    grid smoke smoke-ngram 2 --model ngram "${two[@]}"
    grid smoke smoke-categorical 2 --model categorical "${two[@]}"
else
    mapfile -t every < <(mixers "$MIXERS")
    mapfile -t gpt < <(mixers "$GPT_MIXERS")
    grid quick quick-ngram-categorical "$SEEDS" --model ngram --model categorical "${every[@]}"
    grid quick quick-gpt-tiny "$GPT_SEEDS" --model gpt-tiny "${gpt[@]}"
    grid theory theory "$THEORY_SEEDS"
    grid gerstgrasser2024 gerstgrasser2024 "$THEORY_SEEDS"
    grid qiao2025-gaussian qiao2025-gaussian "$THEORY_SEEDS"
    grid shakespeare-gpt shakespeare-gpt "$GPT_SEEDS"
fi

embed=()
for f in $EMBED; do embed+=(--embed "$f"); done
collapse-bench publish --check "$NEW"
rm -rf "$OUT"
mv "$NEW" "$OUT"
collapse-bench publish --to "$OUT" "${embed[@]}"  # no bundle: refresh the tables embedded in $EMBED
collapse-bench publish --check "$OUT" "${embed[@]}"
echo "published to $OUT; browse $OUT/site/index.html"
