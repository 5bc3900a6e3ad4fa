/* clock.c - see clock.h. */
#include "clock.h"

#include <string.h>

#include "fork_child.h"

static uint64_t held_ms FORK_CHILD_WRITES; /* clock_hold; 0: read the clock */

void clock_hold(uint64_t ms)
{
    held_ms = ms;
}

void clock_release(void)
{
    held_ms = 0;
}

uint64_t now_ms(void)
{
    if (held_ms)
        return held_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* Without gmtime_r and snprintf: a fork child formatting a Last-Modified
 * would fault in their code pages and write gmtime's time-zone lock, about
 * 8 page faults and 10% of its connection (issue 19). The civil date from
 * the day count is H. Hinnant's civil_from_days. */
void http_date_fmt(time_t t, char *buf)
{
    int64_t days = (int64_t)t / 86400, s = (int64_t)t % 86400;
    if (s < 0) {
        s += 86400;
        days--;
    }
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999) /* (not an HTTP date; keep the 29 bytes) */
        y = y < 0 ? 0 : 9999;
    char *p = buf;
    memcpy(p, wday[((days % 7) + 11) % 7], 3); /* 1970-01-01 was a Thursday */
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p = put2(p, d);
    *p++ = ' ';
    memcpy(p, mon[m - 1], 3);
    p += 3;
    *p++ = ' ';
    p = put2(p, (unsigned)(y / 100));
    p = put2(p, (unsigned)(y % 100));
    *p++ = ' ';
    p = put2(p, (unsigned)(s / 3600));
    *p++ = ':';
    p = put2(p, (unsigned)(s / 60 % 60));
    *p++ = ':';
    p = put2(p, (unsigned)(s % 60));
    memcpy(p, " GMT", 5);
}

const char *http_date_now(void)
{
    /* time() is a vDSO call: no syscall; the string is rebuilt once a second. */
    static char buf[32];
    static time_t cached = -1;
    if (held_ms && cached != -1)
        return buf; /* made by the parent before the fork */
    time_t now = time(NULL);
    if (now != cached) {
        http_date_fmt(now, buf);
        cached = now;
    }
    return buf;
}

