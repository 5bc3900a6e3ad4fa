/* test_fuzz_replay.c - run the fuzz corpora through the libFuzzer
 * drivers without libFuzzer, so every seed and every crash found once stays
 * a regression test. The drivers abort() on a broken invariant.
 *
 * The corpus is tests/fuzz/corpus/<driver>/ under the repo root: $FORKHTTPD_ROOT
 * if set, else the current directory. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* Each driver defines LLVMFuzzerTestOneInput; rename it per include. */
int fuzz_request_one(const uint8_t *data, size_t size);
int fuzz_chunked_one(const uint8_t *data, size_t size);
int fuzz_range_one(const uint8_t *data, size_t size);
int fuzz_path_one(const uint8_t *data, size_t size);
int fuzz_cgi_one(const uint8_t *data, size_t size);
int fuzz_environ_one(const uint8_t *data, size_t size);
int fuzz_conn_one(const uint8_t *data, size_t size);
int fuzz_proxy_one(const uint8_t *data, size_t size);

#define LLVMFuzzerTestOneInput fuzz_request_one
#include "../fuzz/fuzz_request.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_chunked_one
#include "../fuzz/fuzz_chunked.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_range_one
#include "../fuzz/fuzz_range.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_path_one
#include "../fuzz/fuzz_path.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_cgi_one
#include "../fuzz/fuzz_cgi.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_environ_one
#include "../fuzz/fuzz_environ.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_proxy_one
#include "../fuzz/fuzz_proxy.c"
#undef LLVMFuzzerTestOneInput
/* fuzz_conn sets itself up on its first input (LLVMFuzzerInitialize is libFuzzer's) */
#define LLVMFuzzerTestOneInput fuzz_conn_one
#define LLVMFuzzerInitialize fuzz_conn_init
#include "../fuzz/fuzz_conn.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

/* Run every regular file of corpus/<name> through fn; returns the count or
 * -1 if the directory cannot be read. */
static int replay(const char *root, const char *name, int (*fn)(const uint8_t *, size_t))
{
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", root, name);
    DIR *d = opendir(dir);
    if (!d) {
        diag("cannot open %s", dir);
        return -1;
    }
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        /* an exact-size heap copy, as libFuzzer gives, so ASan sees over-reads */
        uint8_t *copy = malloc(n ? n : 1);
        if (!copy) abort();
        memcpy(copy, buf, n);
        fn(copy, n);
        free(copy);
        count++;
    }
    closedir(d);
    return count;
}

int main(void)
{
    const char *root = getenv("FORKHTTPD_ROOT");
    if (!root || !*root) root = ".";
    static const struct {
        const char *name;
        int (*fn)(const uint8_t *, size_t);
    } drivers[] = {
        { "request", fuzz_request_one },
        { "chunked", fuzz_chunked_one },
        { "range", fuzz_range_one },
        { "path", fuzz_path_one },
        { "cgi", fuzz_cgi_one },
        { "environ", fuzz_environ_one },
        { "conn", fuzz_conn_one },
        { "proxy", fuzz_proxy_one },
    };
    plan((int)(sizeof drivers / sizeof drivers[0]));
    for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++) {
        int n = replay(root, drivers[i].name, drivers[i].fn);
        ok(n > 0, "fuzz corpus %s: %d inputs replayed", drivers[i].name, n);
    }
    return done_testing();
}
