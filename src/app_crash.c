/* app_crash.c - the crash guard of C apps (and so of WSGI's C extensions).
 *
 * While app code runs (app_crash_enter .. app_crash_leave), a fatal signal
 * answers 500 on the client socket if nothing of the response was sent yet,
 * logs the app and the request line, and re-raises: the process dies by the
 * signal itself. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app_int.h"
#include "sigsafe.h"

/* Installed once per serving process (no syscall per request); while no app
 * code runs (crash_app NULL) the handler gets out of the way: it puts the
 * previous action back (SIG_DFL, or ASan's) and lets the signal happen again. */

static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NCRASH ((int)(sizeof crash_sigs / sizeof crash_sigs[0]))
static struct sigaction crash_old[NCRASH];
static int crash_installed;
/* Per thread: with --threads several calls run at once, each on its own
 * pool thread, and a fault is delivered to the thread that caused it. */
static _Thread_local struct app *volatile crash_app;          /* app code running now */
static _Thread_local const struct request *volatile crash_req; /* ...for this request */
static _Thread_local volatile sig_atomic_t crash_can_answer;  /* nothing of its response sent */
static _Thread_local const char *volatile crash_where;        /* "", " in SYMBOL_init", ... */
#define CRASH_STACK (64 * 1024)
static char crash_stack[CRASH_STACK]; /* a stack overflow needs another stack */

void app_crash_enter(struct app *a, const struct request *rq, int can_answer,
                     const char *where)
{
    crash_req = rq;
    crash_can_answer = can_answer;
    crash_where = where;
    crash_app = a;
}

void app_crash_leave(void)
{
    crash_app = NULL;
}

struct app *app_crash_running(void)
{
    return crash_app;
}

/* Async-signal-safe only: send, shutdown, write, getpid, sigaction, raise. */
static void on_crash(int signo, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int idx = 0;
    while (idx < NCRASH - 1 && crash_sigs[idx] != signo)
        idx++;
    struct app *a = crash_app;
    if (!a) {
        /* not ours: the previous action handles it. A fault (si_code > 0)
         * happens again when we return; a sent signal must be sent again. */
        sigaction(signo, &crash_old[idx], NULL);
        if (si->si_code <= 0)
            raise(signo);
        return;
    }
    crash_app = NULL; /* a fault in here falls through to the default */
    const struct request *rq = crash_req;
    /* (a pool thread's call whose client is gone has crash_fd -1: app_pool.c) */
    int cfd = rq ? __atomic_load_n(&rq->crash_fd, __ATOMIC_RELAXED) : -1;
    if (crash_can_answer && rq && rq->crash_ok && cfd >= 0) {
        static const char canned[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 22\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "Internal Server Error\n";
        ssize_t w = send(cfd, canned, sizeof canned - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        shutdown(cfd, SHUT_WR); /* the FIN goes out right behind it */
    }
    struct sigsafe_line l = {0};
    sigsafe_str(&l, "forkhttpd[");
    sigsafe_uint(&l, (unsigned)getpid());
    sigsafe_str(&l, "]: error: app ");
    sigsafe_str(&l, a->name);
    sigsafe_str(&l, " crashed with signal ");
    sigsafe_signal(&l, signo);
    sigsafe_str(&l, crash_where);
    if (rq) {
        const char *rl;
        size_t rll = app_request_line(rq, &rl);
        sigsafe_str(&l, " serving \"");
        sigsafe_mem(&l, rl, rll);
        sigsafe_str(&l, "\"");
    }
    sigsafe_str(&l, "; the process dies");
    sigsafe_write(&l, STDERR_FILENO);
    /* die by the signal itself, so a parent or the master sees what it was */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(signo, &dfl, NULL);
    raise(signo); /* pending until we return (the signal is blocked in here) */
}

void app_crash_install(void)
{
    if (crash_installed)
        return;
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_DISABLE)) {
        ss.ss_sp = crash_stack; /* keep one already set (e.g. by ASan) */
        ss.ss_size = sizeof crash_stack;
        ss.ss_flags = 0;
        sigaltstack(&ss, NULL);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NCRASH; i++)
        sigaction(crash_sigs[i], &sa, &crash_old[i]);
    crash_installed = 1;
}

void app_crash_uninstall(void)
{
    if (!crash_installed)
        return;
    for (int i = 0; i < NCRASH; i++)
        sigaction(crash_sigs[i], &crash_old[i], NULL);
    crash_installed = 0;
}

/* A pool thread's own alternate stack (sigaltstack is per thread); the
 * handlers are the process's. Returns what app_crash_thread_end frees. */
void *app_crash_thread_begin(void)
{
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE))
        return NULL; /* keep one already set (e.g. by ASan) */
    void *mem = malloc(CRASH_STACK);
    if (!mem)
        return NULL;
    ss.ss_sp = mem;
    ss.ss_size = CRASH_STACK;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) < 0) {
        free(mem);
        return NULL;
    }
    return mem;
}

void app_crash_thread_end(void *stack)
{
    if (!stack)
        return;
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    free(stack);
}
