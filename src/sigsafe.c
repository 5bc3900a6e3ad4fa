/* sigsafe.c - async-signal-safe line formatting (see sigsafe.h). */
#include "sigsafe.h"

#include <string.h>
#include <unistd.h>

/* room for the '\n' sigsafe_write adds */
#define CAP (sizeof ((struct sigsafe_line *)0)->buf - 1)

void sigsafe_mem(struct sigsafe_line *l, const char *s, size_t n)
{
    while (n-- && l->len < CAP)
        l->buf[l->len++] = *s++;
}

void sigsafe_str(struct sigsafe_line *l, const char *s)
{
    sigsafe_mem(l, s, strlen(s));
}

void sigsafe_uint(struct sigsafe_line *l, unsigned v)
{
    char tmp[12];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k && l->len < CAP)
        l->buf[l->len++] = tmp[--k];
}

void sigsafe_signal(struct sigsafe_line *l, int signo)
{
    /* sigabbrev_np: a lookup in a constant table, safe here (strsignal may
     * format into a buffer and consult the locale) */
    const char *abbrev = sigabbrev_np(signo);
    sigsafe_uint(l, (unsigned)signo);
    sigsafe_str(l, " (SIG");
    sigsafe_str(l, abbrev ? abbrev : "?");
    sigsafe_str(l, ")");
}

void sigsafe_write(struct sigsafe_line *l, int fd)
{
    l->buf[l->len++] = '\n';
    ssize_t w = write(fd, l->buf, l->len);
    (void)w;
}
