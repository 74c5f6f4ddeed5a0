#!/usr/bin/env bash
# A long batch of seeded cluster fault runs, one run_cluster.py invocation per run (as root):
#
#   scripts/faults/batch.sh OUT PLAN [run_cluster.py options...]
#
# PLAN is a file of "target seed" lines (target kbroker or kafka), run top to bottom; run i writes
# OUT/<target>/run-<seed>/ and a run whose report.json exists is skipped, so the batch can be
# restarted. The same options (e.g. --faults 10 --duration 1,4 --heal 1,3) go to every run.
# Between runs: while OUT/pause exists the batch waits (to free the machine for another cluster),
# and OUT/stop ends it. If OUT/kbroker-src names a directory, kbroker nodes import the package
# `kbroker` from there (PYTHONPATH; a snapshot made with `git archive`, so edits to the worktree
# do not reach a batch in progress); each run records which in OUT/<target>/run-<seed>/source.
# Afterwards: run_cluster.py --rescore OUT/<target> (summary.json) and --table OUT/<target>.
set -u
out=$1; plan=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../../.venv/bin/python}
mkdir -p "$out"
while read -r target seed; do
    [[ -z "${target:-}" || "$target" == \#* ]] && continue
    while [[ -e "$out/pause" ]]; do sleep 5; done
    [[ -e "$out/stop" ]] && break
    dir=$out/$target
    [[ -e "$dir/run-$seed/report.json" ]] && continue
    src=""
    [[ -s "$out/kbroker-src" ]] && src=$(cat "$out/kbroker-src")
    mkdir -p "$dir/run-$seed"
    echo "${src:-installed kbroker}" > "$dir/run-$seed/source"
    echo "$(date -u +%FT%TZ) start $target $seed" >> "$out/batch.log"
    PYTHONPATH="$src" "$py" "$here/run_cluster.py" --target "$target" --runs 1 --seed "$seed" \
        --out "$dir" "$@" >> "$out/$target.log" 2>&1
    echo "$(date -u +%FT%TZ) end $target $seed rc=$?" >> "$out/batch.log"
done < "$plan"
echo "$(date -u +%FT%TZ) batch done" >> "$out/batch.log"
