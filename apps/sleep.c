/* sleep.c - an app that waits, for the thread pool (--threads) and its tests:
 *     forkhttpd --app /sleep=build/sleep.so:app
 *
 *   /sleep?ms=N        sleeps N ms (default 50, at most 600000), then 200
 *                      "slept N ms\n": an app that waits on something (a
 *                      database, another service)
 *   /sleep/cpu?ms=N    spins on the CPU for N ms, then 200 "spun N ms\n"
 *   /sleep/segv?ms=N   sleeps N ms, then crashes (SIGSEGV): the crash guard
 *                      answers 500 and the worker dies, on a pool thread too
 *   /sleep/raise       returns an error: 500, and the worker goes on
 *   /sleep/post        reads the request body, answers its length: "read N\n"
 *
 * Thread-safe: no state but the request's (app_flags).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <forkhttpd_app.h>

fh_handler app;

const unsigned app_flags = FH_APP_THREAD_SAFE;

static int is(fh_req *r, const char *p)
{
    return r->path_info.len == strlen(p) && memcmp(r->path_info.ptr, p, r->path_info.len) == 0;
}

static long query_ms(fh_req *r)
{
    struct fh_str form = r->query, name, value;
    long ms = 50;
    while (fh_form_next(&form, &name, &value)) {
        char v[16];
        if (name.len == 2 && memcmp(name.ptr, "ms", 2) == 0) {
            fh_unescape(value, v, sizeof v);
            ms = strtol(v, NULL, 10);
        }
    }
    return ms < 0 ? 0 : ms > 600000 ? 600000 : ms;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0)
        ;
}

static void segv(void)
{
    static volatile uintptr_t bad = 16; /* an unmapped page (not NULL: UBSan) */
    *(volatile char *)bad = 1;
}

int app(fh_req *r)
{
    long ms = query_ms(r);
    fh_header(r, "Content-Type", "text/plain");
    if (is(r, "/cpu")) {
        uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
        volatile unsigned long x = 0;
        while (now_ns() < end)
            for (int i = 0; i < 1000; i++)
                x += (unsigned long)i;
        (void)x; /* volatile: the loop is not optimised away */
        return fh_printf(r, "spun %ld ms\n", ms);
    }
    if (is(r, "/segv")) {
        sleep_ms(ms);
        segv();
        return 1;
    }
    if (is(r, "/raise"))
        return 1;
    if (is(r, "/post")) {
        char buf[4096];
        long long total = 0;
        ssize_t n;
        while ((n = fh_read(r, buf, sizeof buf)) > 0)
            total += n;
        return n < 0 ? 1 : fh_printf(r, "read %lld\n", total);
    }
    sleep_ms(ms);
    return fh_printf(r, "slept %ld ms\n", ms);
}
