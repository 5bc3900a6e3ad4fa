/* sig.h - signal handlers that only set flags (async-signal-safe by design). */
#ifndef FH_SIG_H
#define FH_SIG_H

#include <signal.h>

extern volatile sig_atomic_t sig_stop;   /* SIGTERM/SIGINT: graceful stop */
extern volatile sig_atomic_t sig_reload; /* SIGHUP */
extern volatile sig_atomic_t sig_reopen; /* SIGUSR1: reopen the access log */

/* TERM/INT/HUP/USR1 set the flags above (no SA_RESTART: blocking calls return
 * EINTR so loops see the flag); SIGPIPE is ignored (EPIPE from write instead). */
void sig_install(void);
/* The blocking accept loops (iterative, fork, prefork) set this to their
 * listening socket: SIGTERM/SIGINT then close it, so an accept() entered
 * just after the loop looked at sig_stop fails at once (EBADF) instead of
 * waiting for one more client. -1: nothing to close; -2: closed. */
extern volatile int sig_close_on_stop;
/* In a child about to exec: default dispositions and an empty mask. */
void sig_reset_for_exec(void);

#endif
