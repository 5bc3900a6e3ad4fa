/* sig.c - flags set by signal handlers; nothing else happens in a handler. */
#include "sig.h"

#include <string.h>
#include <unistd.h>

#include "fork_child.h"

volatile sig_atomic_t sig_stop;
volatile sig_atomic_t sig_reload;
volatile sig_atomic_t sig_reopen;
volatile int sig_close_on_stop FORK_CHILD_WRITES = -1;

static void on_signal(int signo)
{
    switch (signo) {
    case SIGTERM:
    case SIGINT:
        sig_stop = 1;
        if (sig_close_on_stop >= 0) { /* close() is async-signal-safe */
            close(sig_close_on_stop);
            sig_close_on_stop = -2; /* closed: main.c must not close it again */
        }
        break;
    case SIGHUP: sig_reload = 1; break;
    case SIGUSR1: sig_reopen = 1; break;
    default: break;
    }
}

void sig_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: accept()/poll() return EINTR and we look at the flags */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

void sig_reset_for_exec(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL); /* fails harmlessly for KILL/STOP and unused numbers */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}
