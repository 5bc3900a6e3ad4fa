/* worker.h - the per-process hooks: what every part of the core opens or
 * frees in a process that serves requests (nginx's init_process /
 * exit_process per module, lighttpd's worker_init). One table, run in one
 * order by every model, instead of a hand-written sequence per model. */
#ifndef FH_WORKER_H
#define FH_WORKER_H

enum worker_end_how {
    WORKER_EXIT_NOW, /* the process _exit()s next (a fork-model child): only what
                        must happen (app fini, CGI reaping), no freeing */
    WORKER_FREE,     /* the process lives on or exits normally: free everything,
                        so LeakSanitizer sees no leak */
};

/* In a process about to serve requests (iterative: the server; fork: each
 * child; prefork and event: each worker): every part's begin hook, in order. */
void worker_begin(void);
/* After serving: every part's end hooks, in reverse order. */
void worker_end(enum worker_end_how how);

#endif
