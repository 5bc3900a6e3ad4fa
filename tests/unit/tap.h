/* tap.h - a tiny header-only TAP producer for the unit tests (run by prove).
 *
 *   plan(n)                    or no plan, then done_testing() prints "1..n"
 *   ok(cond, fmt, ...)         one test line; returns cond
 *   is_int(got, want, fmt, ...)
 *   is_str(got, want, fmt, ...)  (NULL-safe)
 *   diag(fmt, ...)             a "# ..." comment on stderr
 *   return done_testing();     exit status: 0 when all passed
 *
 * Everything is static: each test program includes it once.
 */
#ifndef FH_TAP_H
#define FH_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_run, tap_failed, tap_planned = -1;

#if defined(__GNUC__)
#define TAP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TAP_UNUSED __attribute__((unused))
#else
#define TAP_PRINTF(a, b)
#define TAP_UNUSED
#endif

static TAP_UNUSED void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static TAP_UNUSED TAP_PRINTF(1, 2) void diag(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("# ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static TAP_PRINTF(2, 0) int tap_vok(int cond, const char *fmt, va_list ap)
{
    tap_run++;
    if (!cond) tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_run);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    return cond;
}

static TAP_UNUSED TAP_PRINTF(2, 3) int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    return cond;
}

static TAP_UNUSED TAP_PRINTF(3, 4) int is_int(long long got, long long want, const char *fmt, ...)
{
    va_list ap;
    int cond = got == want;
    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    if (!cond) diag("     got: %lld\n#   expected: %lld", got, want);
    return cond;
}

static TAP_UNUSED TAP_PRINTF(3, 4) int is_str(const char *got, const char *want, const char *fmt, ...)
{
    va_list ap;
    int cond = (got && want) ? strcmp(got, want) == 0 : got == want;
    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        diag("     got: '%s'\n#   expected: '%s'", got ? got : "(null)", want ? want : "(null)");
    return cond;
}

static TAP_UNUSED int done_testing(void)
{
    if (tap_planned < 0) printf("1..%d\n", tap_run);
    else if (tap_planned != tap_run) diag("planned %d tests but ran %d", tap_planned, tap_run);
    fflush(stdout);
    if (tap_failed) diag("failed %d of %d tests", tap_failed, tap_run);
    return (tap_failed || (tap_planned >= 0 && tap_planned != tap_run)) ? 1 : 0;
}

#endif
