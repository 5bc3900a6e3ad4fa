/* model_event.c - N workers under the master, each an epoll loop over many
 * non-blocking connections (nginx's design).
 *
 * Every connection is registered once, edge-triggered, for both directions:
 * conn_step() always works until the kernel says EAGAIN, so an edge is never
 * lost and no epoll_ctl is needed per request. Timeouts: a sweep over the
 * open connections every 250 ms compares each deadline with the clock.
 *
 * Accepts are spread with EPOLLEXCLUSIVE on the one shared listening socket:
 * the kernel wakes one waiting worker per connection instead of all of them
 * (no thundering herd), and because the socket is shared, a worker that
 * stops (graceful stop, SIGHUP restart) leaves no queued connection behind -
 * with SO_REUSEPORT each worker has its own queue, and closing it resets the
 * connections still waiting in it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "handler.h"
#include "log.h"
#include "model.h"
#include "sig.h"
#include "supervise.h"

#define SWEEP_MS 250
#define EXTRA_TAG 1u /* epoll data of a connection's extra fd: the econn pointer | 1 */

/* One slot per possible fd: no allocation per connection, and an idle
 * connection costs only this struct (plus the kernel's socket). */
struct econn {
    struct conn c;
    struct econn *prev, *next; /* the open connections, for the timeout sweep */
    int extra_fd;              /* a body stream's fd registered in epoll, or -1 */
    int waiting;               /* what the last conn_step waits for (CONN_*) */
};
_Static_assert(_Alignof(struct econn) > EXTRA_TAG, "the tag bit is free in an econn pointer");

/* reuseport: each first-generation worker writes a byte here once it
 * listens; the master prints the banner when all have (event_ready). */
static int ready_fd = -1, ready_rd = -1;

static struct econn *table;
static size_t table_len;
static struct econn *open_list;
static int nconns;
static int ep = -1;
static int lfd_ = -1;
static int accepting;      /* is the listener in the epoll set? */
static uint64_t resume_at; /* accepting paused (EMFILE) until then */

static void listen_on(int on)
{
    if (on == accepting || lfd_ < 0)
        return;
    if (on) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd_, &ev) < 0) {
            log_error("epoll_ctl add listener:");
            return;
        }
    } else {
        epoll_ctl(ep, EPOLL_CTL_DEL, lfd_, NULL);
    }
    accepting = on;
}

static void unlink_conn(struct econn *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        open_list = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static void close_conn(struct econn *e)
{
    unlink_conn(e);
    if (e->extra_fd >= 0)
        epoll_ctl(ep, EPOLL_CTL_DEL, e->extra_fd, NULL);
    e->extra_fd = -1;
    conn_close(&e->c); /* closing the socket also removes it from the epoll set */
    nconns--;
    sb_set_active((uint64_t)nconns);
    if (!accepting && !sig_stop && nconns < cfg.max_conns && now_ms() >= resume_at)
        listen_on(1);
}

static void step(struct econn *e)
{
    int r = conn_step(&e->c);
    e->waiting = r;
    if (r == CONN_DONE) {
        close_conn(e);
        return;
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
}

static void accept_ready(void)
{
    while (nconns < cfg.max_conns) {
        union net_addr peer;
        int fd = net_accept(lfd_, &peer);
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
        struct econn *e = &table[fd];
        conn_init(&e->c, fd, &peer);
        e->extra_fd = -1;
        e->waiting = CONN_READ;
        e->prev = NULL;
        e->next = open_list;
        if (open_list)
            open_list->prev = e;
        open_list = e;
        nconns++;
        sb_accepted((uint64_t)nconns);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = e};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            log_error("epoll_ctl add:");
            close_conn(e);
            continue;
        }
        step(e); /* the request often arrived with the connection: read it now */
    }
    listen_on(0); /* --max-conns reached: accept again when one closes */
}

static void sweep(uint64_t now)
{
    struct econn *e = open_list, *next;
    for (; e; e = next) {
        next = e->next; /* step() may close and unlink e */
        if (now >= e->c.deadline) {
            conn_timeout(&e->c);
            step(e);
        }
    }
    h_cgi_reap(0); /* CGI scripts whose response is over: reap, kill after their grace */
}

static void stop_soon_all(void)
{
    for (struct econn *e = open_list; e; e = e->next)
        conn_stop_soon(&e->c);
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
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (table == MAP_FAILED || ep < 0) {
        log_error("event worker setup:");
        return 1;
    }
    lfd_ = lfd;
    if (net_reuseport) {
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
    uint64_t next_sweep = now_ms() + SWEEP_MS;
    uint64_t drain_end = 0;
    for (;;) {
        if (sig_stop && !drain_end) {
            /* graceful stop: no new connections; finish the rest */
            listen_on(0);
            close(lfd_);
            lfd_ = -1;
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
        int timeout = next_sweep > now ? (int)(next_sweep - now) : 0;
        int n = epoll_wait(ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait:");
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            struct econn *e = (struct econn *)(uintptr_t)(tag & ~(uint64_t)EXTRA_TAG);
            if (!e) {
                accept_ready();
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
        if (now >= next_sweep) {
            sweep(now);
            next_sweep = now + SWEEP_MS;
        }
    }
    while (open_list)
        close_conn(open_list);
    h_cgi_reap(1); /* the scripts of the last connections: no zombie, none left running */
    if (lfd_ >= 0)
        close(lfd_);
    close(ep);
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
