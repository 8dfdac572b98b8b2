#!/usr/bin/env bash
# Regenerate leaderboards/ from real runs: for each published protocol, run -> export -> publish.
#
#   scripts/regenerate_leaderboards.sh              # the published grids (hours on a CPU; run on a quiet machine)
#   GRID=smoke OUT=/tmp/lb scripts/regenerate_leaderboards.sh   # the same path on a tiny grid, seconds
#
# Environment: SEEDS (default 5), THEORY_SEEDS (10: BCa intervals), GPT_SEEDS (shakespeare-gpt, default 3), RUNS (runs,
# default runs/leaderboards), OUT (the leaderboard folder, default leaderboards). The leaderboard
# is built in a fresh folder and replaces OUT only when every protocol published.
set -euo pipefail
cd "$(dirname "$0")/.."
GRID=${GRID:-full}
SEEDS=${SEEDS:-5}
GPT_SEEDS=${GPT_SEEDS:-3}
THEORY_SEEDS=${THEORY_SEEDS:-10}
RUNS=${RUNS:-runs/leaderboards}
OUT=${OUT:-leaderboards}
NEW="$OUT.new"
rm -rf "$NEW"
mkdir -p "$RUNS" "$NEW"

# Every registered mixer, the curation mixers included, with its default parameters.
MIXERS=$(python -c "from collapse_bench.plugins import get_registry as r; print(' '.join(e.name for e in r().entries('mixer')))")
KNOWN=$(python -c "from collapse_bench.plugins import get_registry as r; print(' '.join(e.name for e in r().entries('protocol')))")

# grid PROTOCOL SEEDS [run options...]: run (resumable: finished steps come from the cache), export, publish.
grid() {
    local protocol=$1 seeds=$2
    shift 2
    if [[ " $KNOWN " != *" $protocol "* ]]; then
        echo "skipped $protocol: not a registered protocol" >&2
        return
    fi
    collapse-bench run -p "$protocol" "$@" --seeds "$seeds" --out "$RUNS" --run-id "$protocol-$seeds" -q
    collapse-bench export "$RUNS/$protocol-$seeds" -o "$RUNS/$protocol-$seeds.json"
    collapse-bench publish "$RUNS/$protocol-$seeds.json" --to "$NEW"
}

mixer_args=()
for m in $MIXERS; do mixer_args+=(--mixer "$m"); done

if [ "$GRID" = smoke ]; then
    grid smoke 2 --model ngram --mixer replace --mixer accumulate
else
    grid quick "$SEEDS" --model ngram --model categorical --model gpt-tiny "${mixer_args[@]}"
    grid theory "$THEORY_SEEDS"
    grid gerstgrasser2024 "$SEEDS"
    grid qiao2025-gaussian "$SEEDS"
    grid shakespeare-gpt "$GPT_SEEDS"
fi

collapse-bench publish --check "$NEW"
rm -rf "$OUT"
mv "$NEW" "$OUT"
echo "published to $OUT; browse $OUT/site/index.html"
