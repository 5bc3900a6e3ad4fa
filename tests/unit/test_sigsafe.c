/* test_sigsafe.c - unit tests of src/sigsafe.c, the async-signal-safe line
 * builder of the crash guard and the fork model's reap narration (TAP, run
 * by prove). */
#include "sigsafe.h"
#include "tap.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* What sigsafe_write puts on a pipe, as a string. */
static const char *written(struct sigsafe_line *l)
{
    static char out[1024];
    int p[2];
    if (pipe(p) < 0)
        return "";
    sigsafe_write(l, p[1]);
    close(p[1]);
    ssize_t n = read(p[0], out, sizeof out - 1);
    close(p[0]);
    out[n > 0 ? n : 0] = 0;
    return out;
}

int main(void)
{
    struct sigsafe_line l = {0};
    sigsafe_str(&l, "[");
    sigsafe_uint(&l, 0);
    sigsafe_str(&l, "] pid ");
    sigsafe_uint(&l, 4294967295u);
    sigsafe_str(&l, ", signal ");
    sigsafe_signal(&l, SIGSEGV);
    sigsafe_mem(&l, " abcdef", 3);
    is_str(written(&l), "[0] pid 4294967295, signal 11 (SIGSEGV) ab\n",
           "strings, decimals, a signal's number and name, a counted piece, one newline");

    struct sigsafe_line u = {0};
    sigsafe_signal(&u, 12345);
    is_str(written(&u), "12345 (SIG?)\n", "a signal without a name");

    struct sigsafe_line big = {0};
    char chunk[100];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 10; i++)
        sigsafe_mem(&big, chunk, sizeof chunk);
    sigsafe_uint(&big, 7);
    const char *w = written(&big);
    is_int((int)strlen(w), (int)sizeof big.buf, "a long line is cut to the buffer");
    ok(w[strlen(w) - 1] == '\n' && w[strlen(w) - 2] == 'x', "the newline still fits; 7 did not");
    return done_testing();
}
