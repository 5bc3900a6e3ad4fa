#!/usr/bin/env bash
# make fuzz: build each libFuzzer driver in tests/fuzz/ with clang (ASan+UBSan)
# and run it for FUZZ_SECONDS (default 60) on a working copy of its corpus.
# New inputs that raise coverage are added to build-fuzz/corpus/NAME; copy the
# interesting ones (and every crash) into tests/fuzz/corpus/NAME so that
# `make test` replays them forever. FUZZ_ONLY=NAME (e.g. conn) runs one driver.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
out=${FUZZ_OUT:-build-fuzz} # FUZZ_OUT=dir: build and work elsewhere
mkdir -p "$out"
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang libclang-rt-14-dev)"; exit 2; }

status=0
for drv in tests/fuzz/fuzz_*.c; do
    name=$(basename "$drv" .c)      # fuzz_request
    short=${name#fuzz_}             # request
    bin=$out/$name
    [ -n "${FUZZ_ONLY:-}" ] && [ "$short" != "$FUZZ_ONLY" ] && continue
    srcs=(src/http_parse.c src/cgi_head.c src/owned_hdr.c src/environ.c src/proxy.c src/realip.c)
    libs=()
    if [ "$short" = conn ]; then # the state machine: the whole core but main.c (and the modules: tls.so, compress.so)
        mapfile -t srcs < <(ls src/*.c | grep -v -e '^src/main\.c$' -e '^src/tls\.c$' -e '^src/compress\.c$')
        # ...and the libraries the Makefile links it with (LDLIBS, as make sees it)
        read -r -a libs < <(printf 'fuzz-ldlibs:\n\t@echo $(LDLIBS)\n' |
                            make -s --no-print-directory -f Makefile -f - fuzz-ldlibs)
    fi
    clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Isrc -Iinclude -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined \
        "$drv" "${srcs[@]}" -o "$bin" "${libs[@]}"
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
