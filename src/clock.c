/* clock.c - see clock.h. */
#include "clock.h"

#include <stdio.h>
#include <string.h>

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void http_date_fmt(time_t t, char *buf)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[64]; /* roomy: the compiler cannot know the fields are small */
    snprintf(tmp, sizeof tmp, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday[tm.tm_wday],
             tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(buf, tmp, 29);
    buf[29] = 0;
}

const char *http_date_now(void)
{
    /* time() is a vDSO call: no syscall; the string is rebuilt once a second. */
    static char buf[32];
    static time_t cached = -1;
    time_t now = time(NULL);
    if (now != cached) {
        http_date_fmt(now, buf);
        cached = now;
    }
    return buf;
}

