#!/usr/bin/env bash
# make fuzz: build each libFuzzer driver in tests/fuzz/ with clang (ASan+UBSan)
# and run it for FUZZ_SECONDS (default 60) on a working copy of its corpus.
# New inputs that raise coverage are added to build-fuzz/corpus/NAME; copy the
# interesting ones (and every crash) into tests/fuzz/corpus/NAME so that
# `make test` replays them forever.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
out=build-fuzz
mkdir -p "$out"
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang libclang-rt-14-dev)"; exit 2; }

status=0
for drv in tests/fuzz/fuzz_*.c; do
    name=$(basename "$drv" .c)      # fuzz_request
    short=${name#fuzz_}             # request
    bin=$out/$name
    clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
        "$drv" src/http_parse.c src/cgi_head.c src/owned_hdr.c src/environ.c -o "$bin"
    corpus=$out/corpus/$short
    mkdir -p "$corpus" "$out/crashes"
    cp -n tests/fuzz/corpus/"$short"/* "$corpus"/ 2>/dev/null || true
    echo "== $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -dict=tests/fuzz/http.dict -max_len=4096 \
            -artifact_prefix="$out/crashes/$short-" -print_final_stats=1 "$corpus" \
            2>"$out/$name.log"; then
        echo "!! $name found a crash: see $out/crashes/ and $out/$name.log"
        status=1
    fi
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|#.*DONE)" "$out/$name.log" | tail -3 || true
done
exit $status
