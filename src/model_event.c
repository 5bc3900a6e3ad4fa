/* model_event.c - N workers under the master, each an epoll loop over many
 * non-blocking connections (nginx's design).
 *
 * Every connection is registered once, edge-triggered, for reading, and
 * for writing too the first time a write would block (a socket is writable
 * when it is added: asking for EPOLLOUT then would be one more wake-up per
 * connection, for nothing): conn_step() always works until the kernel says
 * EAGAIN, so an edge is never lost and no epoll_ctl is needed per request. Timeouts: the open
 * connections sit in a min-heap by deadline (the timers below), and
 * epoll_wait sleeps until the first one: an idle connection costs nothing
 * until its deadline comes.
 *
 * Accepts are spread with EPOLLEXCLUSIVE on the one shared listening socket:
 * the kernel wakes one waiting worker per connection instead of all of them
 * (no thundering herd), and because the socket is shared, a worker that
 * stops (graceful stop, SIGHUP restart) leaves no queued connection behind -
 * with SO_REUSEPORT each worker has its own queue, and closing it resets the
 * connections still waiting in it. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "handler.h"
#include "log.h"
#include "model.h"
#include "scoreboard.h"
#include "sig.h"
#include "supervise.h"

/* Periodic work, whatever the timers: reaping CGI scripts (h_cgi_reap asks
 * sooner when a grace ends), a paused accept, the end of a graceful stop. */
#define TICK_MS 250
#define EXTRA_TAG 1u /* epoll data of a connection's extra fd: the econn pointer | 1 */
/* After a burst: the heap's free pages go back to the kernel once the loop
 * has been quiet this long (heap_settle), at most once a second. */
#define SETTLE_QUIET_MS 200
#define SETTLE_EVERY_MS 1000

/* One slot per possible fd: no allocation per connection, and an idle
 * connection costs only this struct (plus the kernel's socket). */
struct econn {
    struct conn c;
    uint32_t ti;               /* its index in timers[] (every open connection has one) */
    int extra_fd;              /* a body stream's fd registered in epoll, or -1 */
    int waiting;               /* what the last conn_step waits for (CONN_*) */
    unsigned char in_idle;
    unsigned char out_on;      /* EPOLLOUT asked for (the first blocked write) */
    struct econn *idle_prev, *idle_next; /* in the idle list (below) */
};
_Static_assert(_Alignof(struct econn) > EXTRA_TAG, "the tag bit is free in an econn pointer");

/* reuseport: each first-generation worker writes a byte here once it
 * listens; the master prints the banner when all have (event_ready). */
static int ready_fd = -1, ready_rd = -1;

static struct econn *table;
static size_t table_len;
static int nconns;
static int ep = -1;
static int lfd_ = -1;      /* the main listener (net_listeners[0]) in this worker */
static int xlfd[NET_MAX_LISTENERS]; /* --listen ones ([1]...): every worker serves all */
#define LFD(i) ((i) == 0 ? lfd_ : xlfd[i])
static int accepting;      /* is the listener in the epoll set? */
static int full;           /* not accepting: --max-conns open and none idle to reclaim */
static uint64_t resume_at; /* accepting paused (EMFILE) until then */

/* ---- timers ----
 *
 * A binary min-heap of the open connections, keyed by when to look at each
 * (nginx keeps an rbtree, h2o a timer wheel; a heap is as exact as the clock,
 * so a timeout fires on time whatever its length, and needs no wheel to size).
 *
 * Filed lazily: the key is never later than the connection's deadline, but
 * may be earlier. conn_step() moves the deadline on almost every step; when
 * it moves later (the usual case: a keep-alive request pushes the next
 * timeout out), nothing is done, and when the old key comes, expire() files
 * the connection again under its real deadline. So a busy keep-alive
 * connection costs no heap operation per request (one per timeout period),
 * and one only moved earlier (conn_stop_soon...) is re-filed at once. */
struct timer {
    uint64_t at;     /* ms; <= e->c.deadline */
    struct econn *e;
};
static struct timer *timers; /* timers[0] is due first */
static size_t ntimers;

static void timer_place(size_t i, struct timer t)
{
    timers[i] = t;
    t.e->ti = (uint32_t)i; /* < the number of fds, an int */
}

static void sift_up(size_t i, struct timer t)
{
    while (i > 0 && timers[(i - 1) / 2].at > t.at) {
        timer_place(i, timers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    timer_place(i, t);
}

static void sift_down(size_t i, struct timer t)
{
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= ntimers)
            break;
        if (k + 1 < ntimers && timers[k + 1].at < timers[k].at)
            k++;
        if (t.at <= timers[k].at)
            break;
        timer_place(i, timers[k]);
        i = k;
    }
    timer_place(i, t);
}

static void timer_add(struct econn *e, uint64_t at)
{
    sift_up(ntimers++, (struct timer){at, e});
}

/* File e (in the heap) under a new key. */
static void timer_move(struct econn *e, uint64_t at)
{
    struct timer t = {at, e};
    if (at < timers[e->ti].at)
        sift_up(e->ti, t);
    else
        sift_down(e->ti, t);
}

static void timer_del(struct econn *e)
{
    size_t i = e->ti;
    struct timer last = timers[--ntimers];
    if (i == ntimers)
        return;
    if (last.at < timers[i].at) /* the last one takes e's place */
        sift_up(i, last);
    else
        sift_down(i, last);
}

/* After a step: a deadline moved earlier than its key is re-filed now. */
static void timer_update(struct econn *e)
{
    if (e->c.deadline < timers[e->ti].at)
        timer_move(e, e->c.deadline);
}

/* ---- idle keep-alive connections, longest idle first ----
 *
 * At --max-conns a worker does not stop accepting while some of its
 * connections sit idle between requests: it closes the one idle longest to
 * make room (nginx drains its reusable connections the same way). A client
 * whose idle keep-alive connection is closed retries on a new one (RFC 9112
 * 9.3.1: a request on a reused connection may meet a close). Only when no
 * connection is idle does the worker stop accepting, and says so. */
static struct econn *idle_head, *idle_tail;

static void idle_del(struct econn *e)
{
    if (!e->in_idle)
        return;
    if (e->idle_prev)
        e->idle_prev->idle_next = e->idle_next;
    else
        idle_head = e->idle_next;
    if (e->idle_next)
        e->idle_next->idle_prev = e->idle_prev;
    else
        idle_tail = e->idle_prev;
    e->idle_prev = e->idle_next = NULL;
    e->in_idle = 0;
}

static void idle_add(struct econn *e)
{
    if (e->in_idle)
        return; /* still idle: keeps its place (since when it went idle) */
    e->idle_prev = idle_tail;
    e->idle_next = NULL;
    if (idle_tail)
        idle_tail->idle_next = e;
    else
        idle_head = e;
    idle_tail = e;
    e->in_idle = 1;
}

static void listen_on(int on)
{
    if (on == accepting || lfd_ < 0)
        return;
    for (int i = 0; i < net_nlisteners || i == 0; i++) {
        if (on) {
            /* epoll data: the listener's index << 1, below any econn pointer */
            struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
                                     .data.u64 = (uint64_t)i << 1};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, LFD(i), &ev) < 0)
                log_error("epoll_ctl add listener:");
        } else {
            epoll_ctl(ep, EPOLL_CTL_DEL, LFD(i), NULL);
        }
    }
    accepting = on;
}

/* Accepting again (a connection closed or went idle): no longer full. */
static void accept_again(void)
{
    listen_on(1);
    if (full && accepting) {
        full = 0;
        if (sb_self)
            sb_self->full = 0;
    }
}

/* Connections opened or closed since the heap was last trimmed. */
static unsigned long heap_churn;

/* Thousands of connections made and gone (a TLS handshake allocates and
 * frees ~50 KiB in small pieces) leave free memory scattered between the
 * live ones, which malloc keeps: half the RSS of 2,000 idle TLS connections
 * (47 -> 24 KiB each). A quiet loop after such churn gives those pages
 * back; under steady load the loop is never quiet, so this costs nothing
 * there, and the pages would only be faulted in again. */
static void heap_settle(uint64_t now, uint64_t last_busy)
{
    static uint64_t last_trim;
    if (!heap_churn || now - last_busy < SETTLE_QUIET_MS || now - last_trim < SETTLE_EVERY_MS)
        return;
    conn_pool_free(); /* the exchanges kept for reuse too: up to 64 x ~40 KiB */
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    heap_churn = 0;
    last_trim = now;
}

static void close_conn(struct econn *e)
{
    idle_del(e);
    timer_del(e);
    if (e->extra_fd >= 0)
        epoll_ctl(ep, EPOLL_CTL_DEL, e->extra_fd, NULL);
    e->extra_fd = -1;
    conn_close(&e->c); /* closing the socket also removes it from the epoll set */
    nconns--;
    heap_churn++;
    sb_set_active((uint64_t)nconns);
    if (!accepting && !sig_stop && nconns < cfg.max_conns && now_ms() >= resume_at)
        accept_again();
}

static void step(struct econn *e)
{
    int r = conn_step(&e->c);
    e->waiting = r;
    if (r == CONN_DONE) {
        close_conn(e);
        return;
    }
    if (r == CONN_WRITE && e->c.wait_fd == e->c.fd && !e->out_on) {
        /* (MOD reports the socket's state now: a writable edge that came
         * since the write's EAGAIN is not lost) */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = e};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, e->c.fd, &ev) < 0) {
            log_error("epoll_ctl mod:");
            close_conn(e);
            return;
        }
        e->out_on = 1;
    }
    /* waiting on something else than the socket (a CGI/app pipe): watch it too.
     * Add it on every such wait, even under the same number: the pipe of the
     * previous response left the epoll set when it was closed, and the next
     * pipe on this keep-alive connection usually gets the same fd number
     * (EEXIST: still the registered one). Back on the socket: drop it, so a
     * stale number is never DEL'd later, when it may name another fd. */
    if (e->c.wait_fd != e->c.fd) {
        if (e->extra_fd >= 0 && e->extra_fd != e->c.wait_fd)
            epoll_ctl(ep, EPOLL_CTL_DEL, e->extra_fd, NULL);
        /* tagged (low bit): a pipe's EOF (EPOLLHUP) must not be taken for the
         * client's hang-up */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
                                 .data.u64 = (uint64_t)(uintptr_t)e | EXTRA_TAG};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, e->c.wait_fd, &ev) < 0 && errno != EEXIST) {
            log_error("epoll_ctl add stream fd:");
            close_conn(e);
            return;
        }
        e->extra_fd = e->c.wait_fd;
    } else if (e->extra_fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, e->extra_fd, NULL); /* ENOENT if closed: fine */
        e->extra_fd = -1;
    }
    if (conn_is_keepalive_idle(&e->c)) {
        idle_add(e);
        if (full && !accepting && !sig_stop)
            accept_again(); /* one to reclaim now: accept again */
    } else {
        idle_del(e);
    }
    timer_update(e);
}

/* Accept from listener li: one connection (all: every one queued, for a
 * stop). One per readiness event, as nginx does: the listener is
 * level-triggered, so the next epoll_wait reports it again while more
 * wait, batched with the connections' own events; accepting until EAGAIN
 * cost a failed accept4() per connection when they come one at a time. */
static void accept_ready(int li, int all)
{
    while (nconns < cfg.max_conns || idle_head) {
        union net_addr peer;
        int fd = net_accept(LFD(li), &peer);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* another worker took it, or the queue is empty */
            /* EMFILE/ENFILE...: stop accepting for a moment, keep serving */
            log_error("accept: %s; pausing accepts for 100 ms", strerror(errno));
            listen_on(0);
            resume_at = now_ms() + 100;
            return;
        }
        if ((size_t)fd >= table_len) { /* cannot happen: the table covers RLIMIT_NOFILE */
            close(fd);
            continue;
        }
        if (nconns >= cfg.max_conns && idle_head) {
            /* full: the longest-idle keep-alive connection makes room */
            struct econn *old = idle_head;
            uint64_t idle_ms = now_ms() - old->c.rate_t0;
            close_conn(old);
            sb_shed(SHED_RECLAIMED);
            warn_limited(sb_limit(SHED_RECLAIMED),
                         "%d connections open (--max-conns): closed the longest-idle keep-alive "
                         "connection (idle %llu ms) to accept a new one",
                         cfg.max_conns, (unsigned long long)idle_ms);
        }
        struct econn *e = &table[fd];
        conn_init(&e->c, fd, &peer);
        e->extra_fd = -1;
        e->in_idle = 0;
        e->out_on = 0;
        e->idle_prev = e->idle_next = NULL;
        e->waiting = CONN_READ;
        timer_add(e, e->c.deadline);
        nconns++;
        heap_churn++;
        sb_accepted((uint64_t)nconns);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = e};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            log_error("epoll_ctl add:");
            close_conn(e);
            continue;
        }
        if (transport_attach(&e->c, li) < 0) { /* TLS or plain, per listener */
            close_conn(e);
            continue;
        }
        /* not read now: a client's request (or ClientHello) mostly comes
         * after its connection, and a recv() here was an EAGAIN per
         * connection. EPOLL_CTL_ADD reports data already there, so the
         * next epoll_wait steps it either way. */
        if (!all) {
            if (nconns < cfg.max_conns || idle_head)
                return;
            /* full with this one: out of the listener's wait queue now. A
             * worker that waited for the next connection to find out would
             * take the kernel's one EPOLLEXCLUSIVE wakeup for a client it
             * then leaves queued, while a worker with room sleeps on. */
            break;
        }
    }
    /* --max-conns reached and none idle: accept again when one closes or
     * goes idle; the clients wait in the listen queue meanwhile */
    listen_on(0);
    if (!full) {
        full = 1;
        if (sb_self)
            sb_self->full = 1;
        sb_shed(SHED_FULL);
        warn_limited(sb_limit(SHED_FULL),
                     "%d connections open (--max-conns), none idle to close: not accepting "
                     "until one closes or goes idle (new clients wait in the listen queue, "
                     "--backlog %d)",
                     cfg.max_conns, cfg.backlog);
    }
}

/* The connections whose deadline has passed: conn_timeout, then step. Only
 * the due ones are looked at. */
static void expire(uint64_t now)
{
    while (ntimers && timers[0].at <= now) {
        struct econn *e = timers[0].e;
        if (e->c.deadline > now) { /* filed early (lazily): its real deadline */
            timer_move(e, e->c.deadline);
            continue;
        }
        conn_timeout(&e->c);
        step(e);
        if (e->c.fd >= 0) /* still open: at its new deadline, not again in this pass */
            timer_move(e, e->c.deadline > now ? e->c.deadline : now + 1);
    }
}

/* Graceful stop: deadlines only move earlier; re-file them all at once. */
static void stop_soon_all(void)
{
    for (size_t i = 0; i < ntimers; i++) {
        conn_stop_soon(&timers[i].e->c);
        if (timers[i].e->c.deadline < timers[i].at)
            timers[i].at = timers[i].e->c.deadline;
    }
    for (size_t i = ntimers / 2; i-- > 0;) /* heapify */
        sift_down(i, timers[i]);
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int event_worker(int lfd)
{
    struct rlimit rl;
    table_len = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                    ? (size_t)rl.rlim_cur
                    : 65536;
    /* untouched pages cost nothing: RSS grows with the connections really open */
    table = mmap(NULL, table_len * sizeof *table, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    timers = mmap(NULL, table_len * sizeof *timers, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (table == MAP_FAILED || timers == MAP_FAILED || ep < 0) {
        log_error("event worker setup:");
        return 1;
    }
    lfd_ = lfd;
    for (int i = 1; i < net_nlisteners; i++)
        xlfd[i] = net_listeners[i].fd;
    if (net_reuseport) {
        for (int i = 1; i < net_nlisteners; i++) { /* the --listen ones too */
            int fd = net_listen_same(xlfd[i], cfg.backlog);
            if (fd < 0) {
                log_error("reuseport listener:");
                return 1;
            }
            close(xlfd[i]);
            xlfd[i] = fd;
        }
        /* a listener of our own in the port's SO_REUSEPORT group: the kernel
         * hashes each new connection to one worker's queue */
        lfd_ = net_listen_same(lfd, cfg.backlog);
        if (lfd_ < 0) {
            log_error("reuseport listener:");
            return 1;
        }
        close(lfd); /* the master's bound (not listening) socket */
        net_listen_fd = lfd_;
        if (ready_fd >= 0) { /* tell the master this worker listens */
            ssize_t w = write(ready_fd, "", 1);
            (void)w;
        }
    }
    if (ready_fd >= 0)
        close(ready_fd);
    if (ready_rd >= 0)
        close(ready_rd);
    ready_fd = ready_rd = -1;
    listen_on(1);
    sb_set_state(SB_IDLE);

    struct epoll_event evs[256];
    uint64_t next_tick = now_ms() + TICK_MS, next_window = now_ms() + SB_LOOP_WINDOW_MS;
    uint64_t drain_end = 0, woke = 0, last_busy = now_ms();
    for (;;) {
        if (sig_stop && !drain_end) {
            /* graceful stop: no new connections; finish the rest. A
             * SO_REUSEPORT listener's queue is its own (another instance
             * shares the port): take what is queued before closing it, or
             * those connections would be reset */
            if (net_reuseport)
                for (int i = 0; i < net_nlisteners; i++)
                    accept_ready(i, 1);
            listen_on(0);
            close(lfd_);
            lfd_ = -1;
            for (int i = 1; i < net_nlisteners; i++)
                close(xlfd[i]);
            net_listen_fd = -1;
            drain_end = now_ms() + (uint64_t)cfg.grace;
            stop_soon_all();
            sb_set_state(SB_STOPPING);
        }
        if (drain_end && (nconns == 0 || now_ms() >= drain_end))
            break;
        if (sig_reopen) {
            sig_reopen = 0;
            access_log_reopen();
        }
        uint64_t now = now_ms();
        if (!accepting && !drain_end && resume_at && now >= resume_at &&
            nconns < cfg.max_conns) {
            resume_at = 0;
            listen_on(1);
        }
        uint64_t wake = next_tick;
        if (ntimers && timers[0].at < wake)
            wake = timers[0].at;
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (woke) { /* the iteration since the last epoll_wait returned */
            uint64_t us = mono_us() - woke;
            sb_loop_time(us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
        }
        int n = epoll_wait(ep, evs, 256, timeout);
        woke = mono_us();
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait:");
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            struct econn *e = (struct econn *)(uintptr_t)(tag & ~(uint64_t)EXTRA_TAG);
            if (tag < ((uint64_t)NET_MAX_LISTENERS << 1)) { /* a listener */
                accept_ready((int)(tag >> 1), 0);
                continue;
            }
            if (e->c.fd < 0)
                continue;
            if (tag & EXTRA_TAG) { /* the producer's pipe: news for conn_step, not the socket's */
                step(e);
                continue;
            }
            uint32_t ev = evs[i].events;
            if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                e->c.rdhup = 1; /* the EOF comes after the data: no edge will say so */
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                e->c.readable = 1;
            else if (e->waiting != CONN_WRITE && e->c.wait_fd == e->c.fd)
                continue; /* a writable edge nobody waits for (after each response) */
            step(e);
        }
        now = now_ms();
        if (n > 0)
            last_busy = now;
        else
            heap_settle(now, last_busy);
        expire(now);
        if (now >= next_tick) {
            /* CGI scripts whose response is over: reap, kill after their grace */
            int ms = h_cgi_reap(0);
            next_tick = now + (ms >= 0 && ms < TICK_MS ? (uint64_t)ms : TICK_MS);
            if (now >= next_window) {
                sb_loop_window();
                next_window = now + SB_LOOP_WINDOW_MS;
            }
        }
    }
    while (ntimers)
        close_conn(timers[ntimers - 1].e);
    h_cgi_reap(1); /* the scripts of the last connections: no zombie, none left running */
    if (lfd_ >= 0) {
        close(lfd_);
        for (int i = 1; i < net_nlisteners; i++)
            close(xlfd[i]);
    }
    close(ep);
    munmap(timers, table_len * sizeof *timers);
    munmap(table, table_len * sizeof *table);
    return 0;
}

static void event_ready(void)
{
    if (ready_rd < 0)
        return;
    close(ready_fd); /* the master's copy of the write end */
    ready_fd = -1;
    char b[64];
    int got = 0;
    struct pollfd p = {.fd = ready_rd, .events = POLLIN};
    uint64_t end = now_ms() + 5000;
    while (got < cfg.workers && now_ms() < end) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(ready_rd, b, sizeof b);
        if (n <= 0)
            break; /* every worker closed it: ready or dead */
        got += (int)n;
    }
    close(ready_rd);
    ready_rd = -1;
    announce_ready();
}

static void event_setup(int lfd)
{
    if (net_reuseport) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            ready_rd = p[0];
            ready_fd = p[1];
        }
    }
    /* workers share the socket and may lose the race for a connection:
     * accept must then say EAGAIN instead of blocking */
    int fl = fcntl(lfd, F_GETFL);
    fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
    for (int i = 1; i < net_nlisteners; i++)
        fcntl(net_listeners[i].fd, F_SETFL, fcntl(net_listeners[i].fd, F_GETFL) | O_NONBLOCK);
}

static const struct sup_model event = {
    .name = "event",
    .setup = event_setup,
    .started = event_ready,
    .worker = event_worker,
    .balance = NULL,
};

int model_event(int lfd)
{
    return sup_run(lfd, &event);
}
