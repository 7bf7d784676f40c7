#!/bin/sh
# Runs libFuzzer targets one after another on one core, each for RUNS executions (default 1000000),
# from the repository root after building them in build-fuzz (docs/FUZZING.md):
#   nice -n 10 tests/fuzz/run.sh schedule unet_config tokenizer:20000 ...
# (name:N sets -max_len=N, default 4096).
# Each target grows build-fuzz/corpus-work/<name> from tests/fuzz/corpus-<name> and uses
# tests/fuzz/<name>.dict when there is one; its log is build-fuzz/fuzz-logs/<name>.log (the last
# lines hold the executions, cov/ft and time), findings land in build-fuzz/artifacts/.
set -u
RUNS=${RUNS:-1000000}
mkdir -p build-fuzz/fuzz-logs build-fuzz/artifacts
for arg in "$@"; do
    name=${arg%%:*}
    max_len=4096
    [ "$name" != "$arg" ] && max_len=${arg#*:}
    work=build-fuzz/corpus-work/$name
    mkdir -p "$work"
    dict=""
    [ -f tests/fuzz/$name.dict ] && dict=-dict=tests/fuzz/$name.dict
    start=$(date +%s)
    ./build-fuzz/tests/fuzz/fuzz_$name -runs="$RUNS" -max_len=$max_len -timeout=10 -print_final_stats=1 \
        -artifact_prefix=build-fuzz/artifacts/$name- $dict "$work" tests/fuzz/corpus-$name \
        > build-fuzz/fuzz-logs/$name.log 2>&1
    rc=$?
    echo "run.sh: $name exit $rc, $(($(date +%s) - start)) s, $(date -u +%FT%TZ)" >> build-fuzz/fuzz-logs/$name.log
done
