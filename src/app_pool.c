/* app_pool.c - the app thread pool of an event worker (--threads N).
 *
 * nginx's thread pools (ngx_thread_task_post + an eventfd back to the loop):
 * the event loop keeps the socket and everything on it; a pool thread gets a
 * request and gives back a response head and a body source.
 *
 *   loop    h_app() -> app_pool_submit(): copy the request out of the
 *           connection's buffers (q->cp: the head bytes with the parsed views
 *           rebased onto them, the path, the peer, a dup of the spooled body
 *           fd), queue q, and answer with a *deferred* response whose
 *           prepare() (pool_prepare) the core calls when q->efd is readable.
 *   thread  pops q, runs the handler (app_call: the crash guard is per
 *           thread) writing into q's own response, marks it done and writes
 *           q->efd, all under the lock.
 *   loop    pool_prepare(): done -> copy the header lines over and finish
 *           as the inline path does (app_req_finish: memory, file or stream
 *           body; a stream's callbacks run on the loop, as without threads).
 *   abort   the client went away, or --app-timeout passed (the core answers
 *           504): the core closes the placeholder stream (pool_close). A
 *           queued call is dropped; a running one is marked abandoned (and
 *           stuck, after the timeout): the thread that ends it puts it on
 *           the dead list, which the loop frees. A thread is never killed.
 *
 * Inline or pooled (app_pool_call): the hand-off costs ~10-15 µs of CPU and
 * a thread wake-up per call, more than a hello call itself (a WSGI hello
 * served 2-3x slower on the pool than inline). So an app's calls run inline
 * in the loop while they are seen to be short, and on the pool once the app
 * is seen to wait. Calls are timed by their wall time (the handler's
 * alone, vDSO clock); a pooled call's time only says whether the app waits,
 * not that it is fast (it shares the CPU with the loop and, for WSGI, waits
 * for the GIL), so only an inline call can bring an app inline.
 *   start   pooled: an app's first calls (imports, warm-up) never stall the loop.
 *   probe   after NEED pooled calls ended (64 at first), unless half of them or
 *           more took LONG (4x --app-inline-us, 1 ms) on their threads (the
 *           app waits: no probe, count again), the next one runs inline.
 *           Under LONG: the app goes inline. Else NEED doubles, up to
 *           NEED_MAX: an app that is fast on the pool but slow inline (it
 *           waits for something the pool threads hold) stalls the loop for
 *           one call at 64, 128, 256... calls, then once per 65536.
 *   inline  back to the pool when the average (each call capped at LONG)
 *           reaches --app-inline-us (250 µs), on a call of HARD_US (20 ms)
 *           or more, or on the second LONG call within WINDOW calls. So an
 *           app that starts to wait stalls the loop for one call, or for two
 *           if both are under 20 ms: one LONG call alone is not enough, or a
 *           loop descheduled in the middle of a short call (a busy machine:
 *           a few ms) would send a fast app to the pool. Back within FLAP_MS
 *           of going inline: NEED doubles, else it starts again at NEED_BASE.
 * Calls still on the pool when an app goes inline finish there. The choice
 * is per app and per process, made and kept by the loop.
 *
 * Nothing the thread touches belongs to the connection: a client that hangs
 * up, or a worker that reuses the connection's buffers, cannot pull memory
 * from under a running call. The pool's state (queue, counters, a request's
 * pstate/abandoned) is under one mutex; the thread owns q between popping it
 * and marking it done, the loop before and after. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "app_pool.h"
#include "clock.h"
#include "log.h"
#include "scoreboard.h"

struct pool_copy {
    struct request rq;
    struct http_req h;
    union net_addr peer;
    struct tls_facts tls;
    char tls_proto[32], tls_cipher[128], tls_sni[256];
    char *head;
    size_t head_cap;
    char *path;
    size_t path_cap;
    struct response resp; /* the thread's response: status/body in q, header lines here */
};

static struct {
    int on;        /* this process runs thread-safe apps on the pool */
    pthread_mutex_t lock;
    pthread_cond_t work;   /* a call was queued, or stop */
    pthread_cond_t idle;   /* a call ended (app_pool_stop waits for them) */
    pthread_t *tids;
    int nthreads, waiting, busy, stuck;
    struct areq *head, *tail; /* the queue */
    int queued;
    struct areq *dead;     /* abandoned calls that ended: the loop frees them */
    int stopping;
    uint64_t rejected, timeouts;
    uint64_t last_warn;    /* ms: the queue-full warning, once a second */
    uint64_t suppressed;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .work = PTHREAD_COND_INITIALIZER,
       .idle = PTHREAD_COND_INITIALIZER};

/* Under the lock: the scoreboard's view of the pool. */
static void publish(void)
{
    struct sb_slot *s = sb_self;
    if (!s)
        return;
    __atomic_store_n(&s->app_threads, (uint32_t)P.nthreads, __ATOMIC_RELAXED);
    __atomic_store_n(&s->app_busy, (uint32_t)P.busy, __ATOMIC_RELAXED);
    __atomic_store_n(&s->app_queued, (uint32_t)P.queued, __ATOMIC_RELAXED);
    __atomic_store_n(&s->app_stuck, (uint32_t)P.stuck, __ATOMIC_RELAXED);
    __atomic_store_n(&s->app_rejected, P.rejected, __ATOMIC_RELAXED);
    __atomic_store_n(&s->app_timeouts, P.timeouts, __ATOMIC_RELAXED);
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: ~20 ns */
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- inline or pooled (the loop's; see the top) ---- */

enum {
    NEED_BASE = 64,        /* pooled calls before the first inline probe */
    NEED_MAX = 1 << 16,
    WINDOW = 256,          /* two LONG inline calls this close: back to the pool */
    HARD_US = 20000,       /* one inline call this long: back to the pool */
    FLAP_MS = 10000,       /* back to the pool sooner than this: NEED doubles */
};

/* A pooled call of a took us µs on its thread. */
static void pooled_note(struct app *a, uint64_t us)
{
    a->pdone++;
    a->plong += us >= 4 * (uint64_t)cfg.app_inline_us;
}

static void to_pool(struct app *a, int flap)
{
    a->inl = 0;
    a->calls = a->pdone = a->plong = 0;
    if (!a->need || !flap)
        a->need = NEED_BASE;
    else if (a->need < NEED_MAX)
        a->need *= 2;
}

/* An inline call of a took us µs: the loop was stalled that long. probe: it
 * ran as a probe while the app was pooled. */
static void note(struct app *a, uint64_t us, int probe)
{
    uint64_t lim = (uint64_t)cfg.app_inline_us, lng = 4 * lim;
    int is_long = us >= lng;
    if (probe) {
        if (is_long) {
            to_pool(a, 1);
            return;
        }
        a->inl = 1;
        a->inline_ms = now_ms();
        a->calls = 0;
        a->long_at = 0;
        a->avg_us = us;
        return;
    }
    a->calls++;
    a->avg_us = a->avg_us - a->avg_us / 8 + (is_long ? lng : us) / 8;
    int twice = 0;
    if (is_long) {
        twice = a->long_at && a->calls - (a->long_at - 1) <= WINDOW;
        a->long_at = a->calls + 1;
    }
    if (twice || us >= HARD_US || a->avg_us >= lim)
        to_pool(a, now_ms() - a->inline_ms < FLAP_MS);
}

/* ---- the threads ---- */

static void *pool_thread(void *arg)
{
    (void)arg;
    void *stack = app_crash_thread_begin();
    pthread_mutex_lock(&P.lock);
    for (;;) {
        P.waiting++;
        while (!P.head && !P.stopping)
            pthread_cond_wait(&P.work, &P.lock);
        P.waiting--;
        if (!P.head)
            break; /* stopping, and nothing left to run */
        struct areq *q = P.head;
        P.head = q->qnext;
        if (!P.head)
            P.tail = NULL;
        P.queued--;
        q->pstate = P_RUNNING;
        P.busy++;
        publish();
        pthread_mutex_unlock(&P.lock);

        uint64_t t0 = mono_us();
        int rc = app_call(q);
        uint64_t dt = mono_us() - t0;

        pthread_mutex_lock(&P.lock);
        q->rc = rc;
        q->run_us = dt;
        q->pstate = P_DONE;
        P.busy--;
        if (q->abandoned) {
            if (q->stuck)
                P.stuck--;
            q->qnext = P.dead;
            P.dead = q;
        } else {
            /* under the lock: once we let go, the loop may reuse q (and its fd) */
            uint64_t one = 1;
            ssize_t w = write(q->efd, &one, sizeof one);
            (void)w; /* the counter cannot overflow: the loop drains it */
        }
        publish();
        pthread_cond_broadcast(&P.idle);
    }
    pthread_mutex_unlock(&P.lock);
    app_crash_thread_end(stack);
    return NULL;
}

/* Under the lock. A thread gets every signal but the crash guard's blocked:
 * the loop's thread takes SIGTERM, SIGHUP, SIGCHLD... as before. */
static int spawn(void)
{
    if (P.nthreads >= cfg.threads)
        return -1;
    sigset_t all, old;
    sigfillset(&all);
    static const int keep[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        sigdelset(&all, keep[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 2u << 20); /* Python frames and app code; 8 MiB is a lot x 32 */
    int e = pthread_create(&P.tids[P.nthreads], &at, pool_thread, NULL);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        errno = e;
        log_error("app pool: cannot start a thread (%d running):", P.nthreads);
        return -1;
    }
    P.nthreads++;
    return 0;
}

/* ---- process life cycle ---- */

void app_pool_start(void)
{
    P.on = 0;
    if (cfg.threads <= 0)
        return;
    int apps = 0;
    for (int i = 0; i < cfg.nmounts; i++)
        apps += cfg.mounts[i].kind == MOUNT_APP;
    if (!apps)
        return;
    P.tids = calloc((size_t)cfg.threads, sizeof *P.tids);
    if (!P.tids) {
        log_error("app pool: out of memory; apps run in the event loop");
        return;
    }
    P.on = 1;
    P.stopping = 0;
}

static void discard(struct areq *q);

/* Free the abandoned calls that ended (loop). */
static void reclaim(void)
{
    pthread_mutex_lock(&P.lock);
    struct areq *d = P.dead;
    P.dead = NULL;
    pthread_mutex_unlock(&P.lock);
    while (d) {
        struct areq *n = d->qnext;
        pooled_note(d->app, d->run_us);
        discard(d);
        d = n;
    }
}

void app_pool_stop(void)
{
    if (!P.on)
        return;
    pthread_mutex_lock(&P.lock);
    /* the loop has ended its connections; calls still running were
     * abandoned (their clients left, or timed out): wait for those that are
     * not stuck, then stop the threads */
    while (P.busy > P.stuck)
        pthread_cond_wait(&P.idle, &P.lock);
    int stuck = P.busy;
    P.stopping = 1;
    pthread_cond_broadcast(&P.work);
    pthread_mutex_unlock(&P.lock);
    if (stuck) {
        /* a thread cannot be killed, and the app's fini must not run under a
         * call: leave without tidying up (the master sees exit status 0) */
        warn("app pool: %d call%s still running past --app-timeout; the worker exits without "
             "waiting for them",
             stuck, stuck == 1 ? "" : "s");
        fflush(NULL);
        _exit(0);
    }
    for (int i = 0; i < P.nthreads; i++)
        pthread_join(P.tids[i], NULL);
    reclaim();
    free(P.tids);
    P.tids = NULL;
    P.nthreads = P.waiting = P.busy = P.stuck = P.queued = 0;
    P.on = 0;
}

int app_pool_wants(const struct areq *q)
{
    return P.on && (q->app->flags & FH_APP_THREAD_SAFE) && !(q->app->flags & FH_APP_INLINE);
}

/* ---- the copy of the request ---- */

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    char *n = realloc(*p, c);
    if (!n)
        return -1;
    *p = n;
    *cap = c;
    return 0;
}

static void rebase(struct http_str *s, const char *lo, size_t n, const char *to)
{
    uintptr_t p = (uintptr_t)s->p, l = (uintptr_t)lo;
    if (s->p && p >= l && p <= l + n)
        s->p = to + (p - l);
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s, n);
    dst[n] = 0;
}

/* q->cp = req, owning everything it points at: 0, or -1 (no memory, no fd). */
static int copy_request(struct areq *q, const struct request *req)
{
    struct pool_copy *cp = q->cp;
    if (!cp) {
        cp = calloc(1, sizeof *cp);
        if (!cp)
            return -1;
        cp->rq.body_fd = -1;
        q->cp = cp;
    }
    const struct http_req *h = req->h;
    const char *lo = h->method.p;
    /* the head from the request line to its empty line (CRLF CRLF: the
     * parser allows no other ending), whatever came before it */
    const char *end = memmem(lo, h->head_len, "\r\n\r\n", 4);
    size_t n = end ? (size_t)(end + 4 - lo) : h->head_len;
    if (grow(&cp->head, &cp->head_cap, n + 1) < 0 ||
        grow(&cp->path, &cp->path_cap, req->path_len + 1) < 0)
        return -1;
    memcpy(cp->head, lo, n);
    cp->head[n] = 0;
    cp->h = *h;
    struct http_req *c = &cp->h;
    rebase(&c->method, lo, n, cp->head);
    rebase(&c->target, lo, n, cp->head);
    rebase(&c->path, lo, n, cp->head);
    rebase(&c->query, lo, n, cp->head);
    rebase(&c->authority, lo, n, cp->head);
    rebase(&c->host, lo, n, cp->head);
    for (size_t i = 0; i < c->nheaders; i++) {
        rebase(&c->headers[i].name, lo, n, cp->head);
        rebase(&c->headers[i].value, lo, n, cp->head);
    }
    memcpy(cp->path, req->path, req->path_len);
    cp->path[req->path_len] = 0;
    cp->rq = *req;
    cp->rq.h = c;
    cp->rq.path = cp->path;
    cp->rq.peer = NULL;
    if (req->peer) {
        cp->peer = *req->peer;
        cp->rq.peer = &cp->peer;
    }
    if (req->tls) {
        copy_str(cp->tls_proto, sizeof cp->tls_proto, req->tls->protocol);
        copy_str(cp->tls_cipher, sizeof cp->tls_cipher, req->tls->cipher);
        copy_str(cp->tls_sni, sizeof cp->tls_sni, req->tls->sni);
        cp->tls.protocol = cp->tls_proto;
        cp->tls.cipher = cp->tls_cipher;
        cp->tls.sni = req->tls->sni ? cp->tls_sni : NULL;
        cp->rq.tls = &cp->tls;
    }
    cp->rq.body_fd = -1;
    if (req->body_fd >= 0) {
        /* the core closes its fd when the connection ends: the call reads its own */
        cp->rq.body_fd = fcntl(req->body_fd, F_DUPFD_CLOEXEC, 0);
        if (cp->rq.body_fd < 0)
            return -1;
    }
    resp_init(&cp->resp);
    return 0;
}

void app_pool_put(struct areq *q)
{
    if (q->cp && q->cp->rq.body_fd >= 0) {
        close(q->cp->rq.body_fd);
        q->cp->rq.body_fd = -1;
    }
    q->pstate = P_NONE;
}

void app_pool_free(struct areq *q)
{
    app_pool_put(q);
    if (q->cp) {
        free(q->cp->head);
        free(q->cp->path);
        free(q->cp);
        q->cp = NULL;
    }
    if (q->efd >= 0)
        close(q->efd);
    q->efd = -1;
}

/* ---- the loop's side of a call ---- */

/* A call whose client is gone: its stream's close (if it made one), then q. */
static void discard(struct areq *q)
{
    if (q->body == B_STREAM && q->sclose) {
        app_crash_enter(q->app, q->rq, 0, " in its stream's close");
        q->sclose(q->sctx);
        app_crash_leave();
    }
    areq_put(q);
}

static void drain(int efd)
{
    uint64_t v;
    ssize_t r = read(efd, &v, sizeof v);
    (void)r; /* EAGAIN: nothing was signalled */
}

/* The core's deferred.prepare: the head is known once the thread is done. */
static int pool_prepare(void *ctx, struct response *resp, int *wait_fd)
{
    struct areq *q = ctx;
    drain(q->efd);
    pthread_mutex_lock(&P.lock);
    int st = q->pstate;
    pthread_mutex_unlock(&P.lock);
    reclaim();
    if (st != P_DONE) {
        *wait_fd = q->efd;
        return FH_AGAIN;
    }
    /* the thread let go of q: what it set goes into the core's response */
    resp->body = BODY_NONE;
    memset(&resp->stream, 0, sizeof resp->stream);
    const struct response *own = &q->cp->resp;
    memcpy(resp->hdr, own->hdr, own->hdr_len);
    resp->hdr_len = own->hdr_len;
    q->resp = resp;
    pooled_note(q->app, q->run_us);
    app_req_finish(q, q->rc); /* frees q, or hands it to the app's stream */
    return 0;
}

static ssize_t pool_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    (void)ctx, (void)buf, (void)cap, (void)wait_fd;
    return -1; /* never called: prepare replaces the body before the head goes out */
}

/* The core gave up on the call before its head (the client left, or
 * --app-timeout: the core answers 504 and logs the request line). */
static void pool_close(void *ctx)
{
    struct areq *q = ctx;
    uint64_t now = now_ms();
    pthread_mutex_lock(&P.lock);
    int timed_out = now - q->t_start >= (uint64_t)cfg.app_timeout;
    if (timed_out)
        P.timeouts++;
    if (q->pstate == P_RUNNING) {
        q->abandoned = 1;
        if (timed_out) {
            q->stuck = 1;
            P.stuck++;
        }
        /* a crash now must not answer on a socket that may be another's */
        __atomic_store_n(&q->cp->rq.crash_fd, -1, __ATOMIC_RELAXED);
        publish();
        pthread_mutex_unlock(&P.lock);
        return; /* the thread that ends it puts it on the dead list */
    }
    if (q->pstate == P_QUEUED) {
        struct areq **pp = &P.head, *prev = NULL;
        while (*pp && *pp != q) {
            prev = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = q->qnext;
            if (P.tail == q)
                P.tail = prev;
            P.queued--;
        }
    }
    publish();
    pthread_mutex_unlock(&P.lock);
    discard(q); /* queued (never ran) or done (never handed over) */
}

void app_pool_submit(struct areq *q, const struct request *req, struct response *resp)
{
    reclaim();
    if (q->efd < 0)
        q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0 || copy_request(q, req) < 0) {
        log_error("app %s: cannot hand a request to the pool (memory or fds):", q->app->name);
        areq_put(q);
        resp_error(resp, 503);
        return;
    }
    drain(q->efd);
    app_req_fill(q, &q->cp->rq, &q->cp->resp);
    uint64_t now = now_ms();
    pthread_mutex_lock(&P.lock);
    /* calls no thread will take at once: beyond --app-queue, 503 */
    int full = P.nthreads >= cfg.threads && P.queued - P.waiting >= cfg.app_queue;
    if (!full && P.nthreads == 0 && spawn() < 0)
        full = 1;
    if (full) {
        P.rejected++;
        publish();
        int say = now - P.last_warn >= 1000;
        uint64_t before = P.suppressed;
        if (say) {
            P.last_warn = now;
            P.suppressed = 0;
        } else {
            P.suppressed++;
        }
        int busy = P.busy, queued = P.queued;
        pthread_mutex_unlock(&P.lock);
        if (say) {
            const char *rl;
            size_t n = app_request_line(req, &rl);
            warn("app %s: all %d threads busy and %d calls queued (--app-queue): answering 503 "
                 "to \"%.*s\" (%llu more since the last such line)",
                 q->app->name, busy, queued, (int)n, rl, (unsigned long long)before);
        }
        areq_put(q);
        resp_error(resp, 503);
        resp_header(resp, "Retry-After", "1");
        return;
    }
    q->pstate = P_QUEUED;
    q->abandoned = q->stuck = 0;
    q->t_start = now;
    q->qnext = NULL;
    if (P.tail)
        P.tail->qnext = q;
    else
        P.head = q;
    P.tail = q;
    P.queued++;
    if (P.queued > P.waiting)
        spawn(); /* none idle: one more thread, up to --threads */
    pthread_cond_signal(&P.work);
    publish();
    pthread_mutex_unlock(&P.lock);

    resp->deferred.prepare = pool_prepare;
    resp->deferred.ctx = q;
    resp->deferred.fin_ok = 1; /* a half-closed client still gets its answer */
    /* until prepare has the real body: a placeholder whose close() tells us
     * the core gave up (client gone, --app-timeout) */
    resp->body = BODY_STREAM;
    resp->stream.read = pool_read;
    resp->stream.close = pool_close;
    resp->stream.ctx = q;
    resp->timeout_ms = cfg.app_timeout;
}

void app_pool_call(struct areq *q, const struct request *req, struct response *resp)
{
    struct app *a = q->app;
    int probe = 0;
    if (!a->inl) {
        if (!a->need)
            a->need = NEED_BASE;
        if (cfg.app_inline_us > 0 && a->pdone >= a->need) {
            /* most of them long on their threads: the app waits, no probe */
            probe = a->plong * 2 < a->pdone;
            if (!probe)
                a->pdone = a->plong = 0;
        }
        if (!probe) {
            app_pool_submit(q, req, resp);
            return;
        }
    }
    uint64_t t0 = mono_us();
    int rc = app_call(q);
    note(a, mono_us() - t0, probe);
    app_req_finish(q, rc);
}
