/* app_int.h - what the units of the C app gateway share (server side only).
 *
 *   h_app.c       the handler: wrap the core's request in an fh_req, call
 *                 the app, turn what it set into the core's struct response
 *   app_api.c     the fh_api table given to apps (request and response
 *                 calls) and the per-request object with its arena
 *   app_stream.c  an fh_stream body, as the core pulls it
 *   app_crash.c   the crash guard: a fatal signal in app code answers 500
 *   app_load.c    dlopen, symbols, the API version check; init/fini per
 *                 process (h_app_load, h_worker_start/stop)
 *
 * The public side is include/forkhttpd_app.h; docs/apps.md the user's. */
#ifndef FH_APP_INT_H
#define FH_APP_INT_H

#ifndef FH_APP_SERVER_SIDE
#define FH_APP_SERVER_SIDE /* the server has no forkhttpd_app_api_version symbol */
#endif
#include "forkhttpd_app.h"

#include "config.h"
#include "handler.h"

/* One loaded app (shared by the mounts that name the same FILE.so:SYMBOL). */
struct app {
    void *dl;
    fh_handler *fn;
    fh_init *init;
    fh_fini *fini;
    void *state;
    int ready;  /* init ran (or there is none) in this process */
    int broken; /* init failed in this process: its requests get 500 */
    char *file, *symbol;
    const char *arg;    /* the mount's argument (fh_mount_arg), or NULL */
    const char *prefix; /* the first mount's prefix */
    enum app_start start;
    int logged;         /* init/fini logged something (fh_api_log) */
    unsigned dropped_logged; /* bit i: a drop of owned_hdr_name(i) was logged */
    unsigned flags; /* SYMBOL_flags (FH_APP_THREAD_SAFE...), 0 without one */
    /* a thread-safe app with --threads: where its calls run (app_pool.c's
     * app_pool_call; the event loop's alone, per process) */
    int inl;            /* inline in the loop while its calls stay short; else (first) the pool */
    uint64_t avg_us;    /* inline calls' wall time, µs (EWMA, weight 1/8, each capped) */
    uint64_t calls;     /* calls since the last switch */
    uint64_t long_at;   /* calls at the last long inline call, +1 (0: none) */
    uint64_t need;      /* pooled calls before the next inline probe */
    uint64_t pdone, plong; /* pooled calls ended since then; of those, LONG on their thread */
    uint64_t inline_ms; /* when they last went inline (now_ms) */
    char *name; /* "FILE.so:SYMBOL" or the mount's label, for logs */
};

/* ---- the per-request object (app_api.c) ---- */

#define ARENA 4096

struct spill { /* arena overflow: rare (huge heads, many env lookups) */
    struct spill *next;
    char data[];
};

enum { B_NONE, B_STATIC, B_BUF, B_FILE, B_STREAM };

struct areq {
    fh_req pub; /* first: the app's pointer is ours */
    struct areq *next_free;
    struct app *app;
    const struct request *rq;
    struct response *resp;
    int open;    /* inside the handler: the response may still change */
    int status;
    int failed;  /* a refused call: answer 500 */
    char why[160];
    int body;    /* B_* */
    const char *smem;
    size_t slen;
    char *buf;   /* fh_write/fh_printf; handed to the core (mem_free) */
    size_t len, cap;
    int fd;      /* fh_sendfile, owned until handed to the core */
    int64_t foff, flen;
    fh_stream_read *sread;
    fh_stream_close *sclose;
    void *sctx;
    int64_t stream_len, stream_sent;
    int64_t declared; /* the app's Content-Length, -1 none */
    int64_t body_off; /* fh_read position in the spooled request body */
    const char *remote; /* built on demand */
    int remote_port;
    const char *sname;
    unsigned env_have; /* bit e: envv[e] is built */
    const char *envv[16];
    size_t it_k, it_pos; /* fh_env_at's place after the HTTP_* it gave last */
    size_t arena_used;
    struct spill *spill;
    /* the pool (app_pool.c): a handler that runs on a pool thread works on
     * its own copy of the request (cp) and writes into cp's response; the
     * event loop copies the result over once the thread is done */
    struct areq *qnext;     /* the pool's queue / reclaim list */
    int pstate;             /* P_*: under the pool's lock */
    int abandoned;          /* the loop gave up on it (client gone, 504): under the lock */
    int stuck;              /* ...after --app-timeout: counted as stuck */
    int rc;                 /* the handler's return value */
    int efd;                /* eventfd the thread signals when done; kept across reuse */
    uint64_t t_start;       /* ms, when the call was queued */
    uint64_t run_us;        /* the handler's wall time on its thread: set with P_DONE */
    struct pool_copy *cp;   /* allocated on first pooled use; kept across reuse */
    char arena[ARENA];
};

enum { P_NONE, P_QUEUED, P_RUNNING, P_DONE };

/* The table every app gets (fh_req.api, and init/fini's argument). */
extern const struct fh_api app_api;

/* From a free list: no allocation per request once warm. NULL: no memory. */
struct areq *areq_get(void);
/* Frees the write buffer, closes a file not handed over, back to the list. */
void areq_put(struct areq *q);
void areq_pool_free(void);

/* Record why the response is refused (the first reason wins); -1. */
__attribute__((format(printf, 2, 3))) int app_refuse(struct areq *q, const char *fmt, ...);

/* The request line as received, for logs; async-signal-safe. */
size_t app_request_line(const struct request *rq, const char **p);

static inline struct fh_str app_view(struct http_str s)
{
    struct fh_str v = {s.p, s.len};
    return v;
}

/* Point q's fh_req at rq (its views), with resp as the response being built. */
void app_req_fill(struct areq *q, const struct request *rq, struct response *resp);
/* Run the handler under the crash guard (any thread); returns its value. */
int app_call(struct areq *q);
/* What the handler set, checked, into q->resp; or a 500. Frees q (or hands
 * it to the stream). Event loop only. */
void app_req_finish(struct areq *q, int rc);

/* ---- the stream body (app_stream.c) ---- */

/* Hand q's fh_stream body to the core: q lives until the core closes it. */
void app_stream_attach(struct areq *q, struct response *resp);

/* ---- the crash guard (app_crash.c) ---- */

/* Around every call into app code: a, for requests rq (NULL in init/fini);
 * can_answer: nothing of the response is sent yet, a crash may answer 500;
 * where: "" or " in its init" and the like, for the log line. */
void app_crash_enter(struct app *a, const struct request *rq, int can_answer,
                     const char *where);
void app_crash_leave(void);
/* The app whose code runs now (fh_log/fh_mount_arg from init/fini), or NULL. */
struct app *app_crash_running(void);
/* The signal handlers, once per serving process. */
void app_crash_install(void);
void app_crash_uninstall(void);
/* In a pool thread, at its start and end: its own alternate signal stack. */
void *app_crash_thread_begin(void);
void app_crash_thread_end(void *stack);

/* ---- life cycle (app_load.c) ---- */

/* Run a's init in this process unless it ran: 1 ready, 0 broken (500s). */
int app_ready(struct app *a);

#endif
