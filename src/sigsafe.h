/* sigsafe.h - one log line built and written from inside a signal handler.
 *
 * No printf, no malloc, no locale: only stores into a fixed buffer and one
 * write(2), all async-signal-safe. Used by the app crash guard (app_crash.c)
 * and the fork model's reap narration (model_fork.c).
 *
 *   struct sigsafe_line l = {0};
 *   sigsafe_str(&l, "[");
 *   sigsafe_uint(&l, (unsigned)getpid());
 *   sigsafe_str(&l, "] reaped");
 *   sigsafe_write(&l, STDERR_FILENO);     "...\n", in one write
 *
 * What does not fit is cut; the newline always fits. */
#ifndef FH_SIGSAFE_H
#define FH_SIGSAFE_H

#include <stddef.h>

struct sigsafe_line {
    size_t len;
    char buf[512];
};

void sigsafe_mem(struct sigsafe_line *l, const char *s, size_t n);
void sigsafe_str(struct sigsafe_line *l, const char *s);
void sigsafe_uint(struct sigsafe_line *l, unsigned v);
/* "N (SIGNAME)", e.g. "11 (SIGSEGV)" (sigabbrev_np: a constant table). */
void sigsafe_signal(struct sigsafe_line *l, int signo);
/* Append '\n' and write the line to fd (the result is ignored). */
void sigsafe_write(struct sigsafe_line *l, int fd);

#endif
