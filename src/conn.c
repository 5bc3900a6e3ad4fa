/* conn.c - the connection state machine (see conn.h), written once for every model. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "compress.h"
#include "fork_child.h"
#include "config.h"
#include "handler.h"
#include "http_parse.h"
#include "http_resp.h"
#include "log.h"
#include "environ.h"
#include "owned_hdr.h"
#include "proxy.h"
#include "realip.h"
#include "router.h"
#include "sig.h"
#include "scoreboard.h"

enum {
    S_NONE,    /* (x->after_flush: nothing to enter) */
    S_IDLE,    /* between requests: no buffers, waiting for the first byte */
    S_HEAD,    /* reading and parsing a request head */
    S_BODY,    /* reading (and discarding) the request body */
    S_SPOOL_START, /* about to spool: open the file, queue "100 Continue" */
    S_SPOOL,   /* reading the request body into a temporary file for the handler */
    S_PREPARE, /* the handler ran; its response head is not known yet (CGI) */
    S_RESPOND, /* the handler ran; put the response head (and small body) into out */
    S_WRITE,   /* sending out, then the pending body (file, big memory, stream) */
    S_LINGER,  /* sent a final response while input may still arrive: drain, then close */
    S_DONE,
};

#define OUT_CAP 16384
#define SMALL_FILE FH_SMALL_BODY /* bodies up to this size are copied into out (batched writes) */
#define LINGER_MS 2000
#define LINGER_BYTES (1 << 20)
#define CHUNK_PREFIX 18 /* room before a streamed piece for its chunk-size line */
#define CONTINUE_100 "HTTP/1.1 100 Continue\r\n\r\n"

/* respond() waits for room for a head plus a small body; an empty out[] must
 * always have it, or a response could never be written */
_Static_assert(OUT_CAP >= RESP_FIXED_HEAD_MAX + RESP_HDR_CAP + SMALL_FILE,
               "out[] holds a full head and a small body");
/* a streamed piece: chunk-size line, the piece, CRLF, and the last-chunk */
_Static_assert(CHUNK_PREFIX >= sizeof "ffffffffffffffff\r\n" - 1, "a chunk-size line fits");
_Static_assert(OUT_CAP > CHUNK_PREFIX + 32, "room for a streamed piece");
_Static_assert(OUT_CAP >= sizeof CONTINUE_100, "100 Continue fits an empty out[]");

struct exchange {
    struct exchange *next_free;
    struct http_req req;
    struct http_chunked chunk;
    struct response resp;
    struct request rq;
    size_t in_len;     /* bytes in in[] */
    size_t in_cap;
    size_t head_len;   /* head of the current request (0: not parsed yet) */
    int64_t body_left; /* Content-Length bytes still to read; -1 chunked; 0 none */
    int64_t body_seen; /* decoded body bytes so far (for --max-body) */
    size_t out_len, out_sent;
    int keep_alive;    /* for the request being answered */
    int closing;       /* close after out is flushed */
    int linger;        /* ...and drain input before closing */
    int pending;       /* resp's body still to send after out (file/mem/stream) */
    int chunked_out;   /* frame the stream body as chunked */
    int is_head;
    int gw;            /* the response is a gateway's (CGI, app, WSGI): --compress may code it */
    struct zstream *z; /* ...coding its body as it is sent (NULL: as it is) */
    int64_t z_left;    /* ...its memory or file bytes still to code */
    int z_eof;         /* ...the source is exhausted: finishing */
    int z_dirty;       /* ...source bytes given since the last flush */
    int after_flush;   /* a state to enter once out[] is sent (0: none): a request
                          that will wait (for its body, a CGI head, room in out)
                          first sends the answers queued before it */
    int spool_fd;      /* the request body for the handler (S_SPOOL), or -1 */
    int64_t spool_held; /* ...its bytes counted against --spool-budget */
    int64_t body_limit; /* --max-body, or --max-unread-body for a body nobody reads */
    int corked;        /* TCP_CORK is on while a file body is sent */
    int wrote, nodelay; /* a write was tried; TCP_NODELAY set (nodelay_before_write) */
    int forwarded;     /* client: a trusted proxy's forwarding header named it (realip.h) */
    union net_addr client;
    int log_status;    /* the answer being sent, logged when it is finished or
                          aborted (access log); 0: none */
    uint64_t body_sent; /* ...its body bytes written so far */
    size_t body_from, body_to; /* ...its body bytes in out[] (offsets), counted as they leave */
    size_t linger_bytes;
    /* The request's normalised path (router_route): in path[] when it fits,
     * as most do, else in path_big (grown as needed, freed with the
     * exchange). A PATH_MAX array here put the path on a page of its own:
     * one more fault in each fork child (issue 19). */
    char *path_big;
    size_t path_big_cap;
    char path[256];
    char *in;
    char out[OUT_CAP];
};

static void conn_nodelay(struct conn *c)
{
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* (fails on a UNIX socket) */
}

/* (taken by a fork child from what its parent reserved: fork_child.h) */
static struct exchange *free_list FORK_CHILD_WRITES;
static unsigned free_count FORK_CHILD_WRITES;

/* A new exchange; page-aligned for a fork child (conn_pool_reserve): its
 * fields, the path and the head of out[] then share two pages. */
static struct exchange *x_new(int page_aligned)
{
    /* head buffer: the parser reports 431 past max_head, so it never fills up */
    size_t in_cap = cfg.max_head + 8192;
    struct exchange *x = NULL;
    if (page_aligned) {
        if (posix_memalign((void **)&x, 4096, sizeof *x + in_cap) != 0)
            return NULL;
    } else if (!(x = malloc(sizeof *x + in_cap))) {
        return NULL;
    }
    x->in = (char *)(x + 1);
    x->in_cap = in_cap;
    x->path_big = NULL;
    x->path_big_cap = 0;
    return x;
}

/* An exchange from the pool, or a new one (x_new), ready for a request. */
static struct exchange *x_get(int page_aligned)
{
    struct exchange *x = free_list;
    if (x) {
        free_list = x->next_free;
        free_count--;
    } else if (!(x = x_new(page_aligned))) {
        return NULL;
    }
    x->in_len = 0;
    x->out_len = x->out_sent = 0;
    x->head_len = 0;
    x->closing = x->linger = x->pending = x->after_flush = 0;
    x->spool_fd = -1;
    x->spool_held = 0;
    x->body_limit = 0;
    x->corked = 0;
    x->wrote = x->nodelay = 0;
    x->forwarded = 0;
    x->log_status = 0;
    x->body_from = x->body_to = 0;
    x->gw = 0;
    x->z = NULL;
    resp_init(&x->resp);
    http_req_init(&x->req);
    return x;
}

/* Spooled body bytes held by this process's exchanges (--spool-budget). */
static int64_t spool_used;

static void spool_close(struct exchange *x)
{
    if (x->spool_fd >= 0)
        close(x->spool_fd);
    x->spool_fd = -1;
    if (x->spool_held) { /* (a global written only when it changes: fork_child.h) */
        spool_used -= x->spool_held;
        x->spool_held = 0;
    }
}

static void x_put(struct exchange *x)
{
    if (x->path_big) { /* (a write only when there is one: fork_child.h) */
        free(x->path_big);
        x->path_big = NULL;
        x->path_big_cap = 0;
    }
    resp_release(&x->resp);
    if (x->z) { /* a coded body cut short (the client gone, a timeout) */
        zs_free(x->z);
        x->z = NULL;
    }
    spool_close(x);
    if (free_count >= 64) { /* keep a few for reuse: no malloc per request */
        free(x);
        return;
    }
    x->next_free = free_list;
    free_list = x;
    free_count++;
}

void conn_pool_reserve(void)
{
    struct exchange *x = x_get(1);
    if (x)
        x_put(x);
}

void conn_pool_free(void)
{
    while (free_list) {
        struct exchange *x = free_list;
        free_list = x->next_free;
        free(x);
    }
    free_count = 0;
}

void conn_init(struct conn *c, int fd, const union net_addr *peer)
{
    c->tp = &transport_plain;
    c->tp_ctx = NULL;
    c->tp_want = 0;
    c->policy = TP_POLICY_NONE;
    c->fd = fd;
    c->wait_fd = fd;
    c->state = S_IDLE;
    c->readable = 1; /* the request often arrives with the connection */
    c->rdhup = 0;
    c->nreq = 0;
    c->deadline = now_ms() + (uint64_t)cfg.header_timeout;
    c->rate_t0 = now_ms();
    c->rate_bytes = 0;
    c->hard_deadline = c->deadline;
    c->peer = *peer;
    c->proxy = 0; /* transport_attach says so for a /proxy listener */
    c->local.sa.sa_family = AF_UNSPEC;
    c->x = NULL;
}

static void log_done(struct conn *c, struct exchange *x);

void conn_close(struct conn *c)
{
    if (c->x) {
        log_done(c, c->x); /* an answer cut short: logged with the bytes that left */
        x_put(c->x);
        c->x = NULL;
    }
    if (c->tp->close)
        c->tp->close(c); /* the transport's state (a TLS session) */
    c->tp = &transport_plain;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = S_DONE;
}

#define STOP_LAST_CHANCE_MS 1000

void conn_stop_soon(struct conn *c)
{
    if (c->state != S_IDLE)
        return; /* in flight: it finishes, with "Connection: close" */
    uint64_t ms = (uint64_t)cfg.keepalive_timeout < STOP_LAST_CHANCE_MS ? (uint64_t)cfg.keepalive_timeout
                                                                          : STOP_LAST_CHANCE_MS;
    uint64_t end = now_ms() + ms;
    if (c->deadline > end)
        c->deadline = end;
}

int conn_is_idle(const struct conn *c)
{
    return c->state == S_IDLE;
}

int conn_is_keepalive_idle(const struct conn *c)
{
    return c->state == S_IDLE && c->nreq > 0 && !c->x;
}

/* ---- states and their deadlines ----
 *
 * Every wait has a deadline, and which one is decided here only: the state
 * names the timeout, its flag and what a timeout means, so a log line can
 * never name the wrong one. */

enum wait_reason { W_KEEPALIVE, W_HEADER, W_BODY, W_HANDLER, W_WRITE, W_LINGER };

static const struct {
    const char *name; /* as in the log line: "<name> timeout (N ms)" */
} waits[] = {
    [W_KEEPALIVE] = {"keep-alive"}, /* --keepalive-timeout */
    [W_HEADER] = {"header"},        /* --header-timeout */
    [W_BODY] = {"body"},            /* --body-timeout */
    [W_HANDLER] = {"handler"},      /* the handler's own (--cgi-timeout), else --write-timeout */
    [W_WRITE] = {"write"},          /* --write-timeout */
    [W_LINGER] = {"linger"},        /* LINGER_MS */
};

/* While every process is taken (conn_busy: the prefork pool at
 * --max-workers, none idle), a process must not wait long for a client:
 * like Apache's event MPM under load, heads and keep-alive get less time. */
#define BUSY_HEADER_MS 1000
#define BUSY_KEEPALIVE_MS 200
#define BUSY_LINGER_MS 200 /* a cut slowloris would hold the process for LINGER_MS */
/* --min-rate: a head or body must have brought min_rate bytes a second
 * since its start, after this grace (shorter while busy) */
#define MIN_RATE_GRACE_MS 2000
#define MIN_RATE_BUSY_GRACE_MS 500

int (*conn_busy)(void);

static int is_busy(void)
{
    return conn_busy && conn_busy();
}

static int min_ms(int a, int b)
{
    return a < b ? a : b;
}

static int wait_ms(const struct conn *c, enum wait_reason w)
{
    switch (w) {
    case W_KEEPALIVE:
        return is_busy() ? min_ms(cfg.keepalive_timeout, BUSY_KEEPALIVE_MS) : cfg.keepalive_timeout;
    case W_HEADER:
        return is_busy() ? min_ms(cfg.header_timeout, BUSY_HEADER_MS) : cfg.header_timeout;
    case W_BODY: return cfg.body_timeout;
    case W_HANDLER: /* the handler's own timeout (--cgi-timeout...), else a write's */
        return c->x && c->x->resp.timeout_ms ? c->x->resp.timeout_ms : cfg.write_timeout;
    case W_WRITE: return cfg.write_timeout;
    case W_LINGER: return is_busy() ? BUSY_LINGER_MS : LINGER_MS;
    }
    return cfg.write_timeout;
}

/* --min-rate: the deadline is the earlier of the state's own timeout and
 * the moment the bytes so far stop paying for the time taken (Apache's
 * mod_reqtimeout MinRate): a client trickling a byte every few seconds holds
 * a process (prefork, fork) or a connection for the grace, not for
 * --header-timeout or, in a body, for ever. */
static uint64_t rate_due(const struct conn *c)
{
    if (!cfg.min_rate)
        return UINT64_MAX;
    uint64_t grace = is_busy() ? MIN_RATE_BUSY_GRACE_MS : MIN_RATE_GRACE_MS;
    return c->rate_t0 + grace + c->rate_bytes * 1000u / (uint64_t)cfg.min_rate;
}

static void rate_apply(struct conn *c)
{
    uint64_t due = rate_due(c);
    c->deadline = due < c->hard_deadline ? due : c->hard_deadline;
}

/* Did the deadline that passed come from --min-rate (not the state's own)? */
static int rate_cut(const struct conn *c)
{
    return c->deadline < c->hard_deadline;
}

static void arm(struct conn *c, enum wait_reason w)
{
    c->wait_reason = (unsigned char)w;
    c->deadline = now_ms() + (uint64_t)wait_ms(c, w);
    c->hard_deadline = c->deadline;
    if (w == W_HEADER || w == W_BODY)
        rate_apply(c);
}

/* Enter a state; a state that waits for the peer or a producer gets its
 * deadline from the table. */
static void set_state(struct conn *c, int state)
{
    c->state = state;
    if (state == S_IDLE || state == S_HEAD || state == S_BODY || state == S_SPOOL ||
        state == S_LINGER) {
        c->rate_t0 = now_ms(); /* the state's start: --min-rate, the busy caps */
        c->rate_bytes = state == S_HEAD && c->x ? c->x->in_len : 0;
    }
    switch (state) {
    case S_IDLE: arm(c, W_KEEPALIVE); break;
    case S_HEAD: arm(c, W_HEADER); break;
    case S_BODY:
    case S_SPOOL: arm(c, W_BODY); break;
    case S_PREPARE: arm(c, W_HANDLER); break;
    case S_WRITE: arm(c, W_WRITE); break;
    case S_LINGER: arm(c, W_LINGER); break;
    default: break; /* S_RESPOND, S_DONE: no wait */
    }
}

/* Enter state once every queued answer has left out[]: now, when out[] is
 * empty; else after S_WRITE has sent it. */
static void after_flush(struct conn *c, int state)
{
    struct exchange *x = c->x;
    if (x->out_sent < x->out_len) {
        x->after_flush = state;
        set_state(c, S_WRITE);
    } else {
        x->out_len = x->out_sent = 0;
        set_state(c, state);
    }
}

/* ---- helpers ---- */

/* (on the caller's stack: a static rewritten per request would be one more
 * copy-on-write fault in each fork child, fork_child.h) */
static struct http_limits limits(void)
{
    return (struct http_limits){
        .max_line = cfg.max_line, .max_head = cfg.max_head, .max_headers = cfg.max_headers};
}

/* recv into in[]: >0 bytes, 0 EOF, -1 error, FH_AGAIN would block. */
static ssize_t fill(struct conn *c)
{
    struct exchange *x = c->x;
    if (!c->readable)
        return FH_AGAIN; /* drained: wait for the model to see new bytes */
    for (;;) {
        size_t room = x->in_cap - x->in_len;
        ssize_t n = c->tp->recv(c, x->in + x->in_len, room);
        if (n > 0) {
            x->in_len += (size_t)n;
            if ((size_t)n < room && !c->rdhup)
                c->readable = 0; /* a short read: the socket is empty now */
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->tp_want != CONN_WRITE) /* (a TLS read that must write first: not drained) */
                c->readable = 0;
            return FH_AGAIN;
        }
        return -1;
    }
}

/* Drop the bytes of the request just answered; keep pipelined ones. */
static void consume_request(struct exchange *x)
{
    size_t used = x->head_len;
    if (used > x->in_len)
        used = x->in_len;
    memmove(x->in, x->in + used, x->in_len - used);
    x->in_len -= used;
    x->head_len = 0;
    x->forwarded = 0;
    http_req_init(&x->req);
    spool_close(x);
}

/* The request line as received (between leading CRLFs and its CRLF), or ""
 * while no complete head has been parsed. */
static size_t request_line_of(const struct exchange *x, const char **rl)
{
    const struct http_req *r = &x->req;
    *rl = "";
    if (!r->method.p || r->version_minor < 0 || !x->head_len)
        return 0;
    const char *e = memchr(r->method.p, '\r', (size_t)(x->in + x->head_len - r->method.p));
    if (!e)
        return 0;
    *rl = r->method.p;
    return (size_t)(e - r->method.p);
}

static void log_access(struct conn *c, struct exchange *x, int status, uint64_t bytes)
{
    if (!access_log_enabled())
        return;
    char peer[INET6_ADDRSTRLEN];
    /* the client: the connection's peer, or who a PROXY header or a trusted
     * proxy's forwarding header named */
    net_addr_str(x->forwarded ? &x->client : &c->peer, peer, sizeof peer, NULL);
    const struct http_req *r = &x->req;
    const char *rl;
    size_t rl_len = request_line_of(x, &rl);
    if (!rl_len) { /* no request parsed (garbage, a timeout): the first line as
                    * received, as nginx logs it; none at all is "-" */
        size_t i = 0;
        while (i < x->in_len && (x->in[i] == '\r' || x->in[i] == '\n'))
            i++;
        rl = x->in + i;
        while (i < x->in_len && x->in[i] != '\r' && x->in[i] != '\n')
            i++;
        rl_len = (size_t)(x->in + i - rl);
    }
    const struct http_header *ref = x->head_len ? http_req_header(r, "Referer") : NULL;
    const struct http_header *ua = x->head_len ? http_req_header(r, "User-Agent") : NULL;
    const struct tls_facts *tls = c->tp->facts ? c->tp->facts(c) : NULL;
    access_log_write(peer, rl, rl_len, status, bytes, ref ? ref->value.p : NULL,
                     ref ? ref->value.len : 0, ua ? ua->value.p : NULL, ua ? ua->value.len : 0,
                     tls ? tls->protocol : NULL, tls ? tls->cipher : NULL);
}

/* The access log line of the answer being sent, once: when its last byte
 * has left, or when the exchange is aborted (the body bytes written so far). */
static void log_done(struct conn *c, struct exchange *x)
{
    if (!x->log_status)
        return;
    log_access(c, x, x->log_status, x->body_sent);
    x->log_status = 0;
    x->body_from = x->body_to = 0;
}

/* out[from, to) has been written: count the body bytes among them. */
static void count_out(struct exchange *x, size_t from, size_t to)
{
    size_t a = from > x->body_from ? from : x->body_from;
    size_t b = to < x->body_to ? to : x->body_to;
    if (b > a)
        x->body_sent += b - a;
}

/* Answer with an error page and close (the framing of what follows is unknown
 * or the client broke a rule); drain input before closing so the client
 * reads the answer instead of a reset. */
static void fail(struct conn *c, int status)
{
    struct exchange *x = c->x;
    resp_release(&x->resp);
    resp_init(&x->resp);
    resp_error(&x->resp, status);
    x->gw = 0; /* the core's answer, not the gateway's */
    x->is_head = x->req.m == HTTP_M_HEAD;
    x->keep_alive = 0;
    x->linger = 1;
    c->state = S_RESPOND;
}

/* ---- shedding load: a limit answers ----
 *
 * Every limit that refuses a request answers so that a client understands
 * (413/414/431 for sizes, 503 + Retry-After for "busy", 408 for too slow),
 * counts on the status page, and writes a warn line naming its flag, at
 * most one a second per limit (warn_limited: no log flood under attack). */

static void shed(struct conn *c, int status, enum sb_shed what, const char *why)
{
    char peer[INET6_ADDRSTRLEN];
    int port = 0;
    net_addr_str(&c->peer, peer, sizeof peer, &port);
    sb_shed(what);
    warn_limited(sb_limit(what), "%s from %s port %d: answering %d", why, peer, port, status);
    fail(c, status);
    if (status == 503)
        resp_header(&c->x->resp, "Retry-After", "1");
}

static void shed_413(struct conn *c, int64_t size, int declared)
{
    char why[200];
    int unread = c->x->body_limit < cfg.max_body;
    snprintf(why, sizeof why, "request body %s %lld bytes over %s (%lld)",
             declared ? "of" : "past", (long long)size, unread ? "--max-unread-body" : "--max-body",
             (long long)c->x->body_limit);
    shed(c, 413, SHED_413, why);
}

/* ---- the request: after the head is parsed ---- */

/* An unlinked temporary file: bodies of any size in constant memory, and a
 * plain file a CGI program can read as its stdin (no pipe to deadlock on). */
static int spool_open(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
        return fd;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/forkhttpd-body-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static void fail(struct conn *c, int status);

/* Count n more spooled bytes against --spool-budget: 0, or -1 with 503 (or
 * 413 for a body that could never fit) set. */
static int spool_reserve(struct conn *c, int64_t n)
{
    struct exchange *x = c->x;
    char why[200];
    if (x->spool_held + n > cfg.spool_budget) {
        snprintf(why, sizeof why, "request body of %lld bytes over --spool-budget (%lld)",
                 (long long)(x->spool_held + n), (long long)cfg.spool_budget);
        shed(c, 413, SHED_413, why);
        return -1;
    }
    if (spool_used + n > cfg.spool_budget) {
        snprintf(why, sizeof why,
                 "spool budget full: %lld of %lld bytes held by request bodies in this process "
                 "(--spool-budget); %lld more asked",
                 (long long)spool_used, (long long)cfg.spool_budget, (long long)n);
        shed(c, 503, SHED_SPOOL, why);
        return -1;
    }
    spool_used += n;
    x->spool_held += n;
    return 0;
}

static int start_spool(struct conn *c)
{
    struct exchange *x = c->x;
    if (x->body_left > 0 && spool_reserve(c, x->body_left) < 0)
        return -1; /* Content-Length: the whole body, before a byte of it is read */
    x->spool_fd = spool_open();
    if (x->spool_fd < 0) {
        log_error("cannot create a temporary file for a request body:");
        fail(c, 503);
        return -1;
    }
    if (x->req.expect_continue && x->req.version_minor == 1) {
        /* the client waits for this before it sends the body: it goes out
         * through out[], after the answers to earlier pipelined requests */
        if (x->out_len + sizeof CONTINUE_100 - 1 > OUT_CAP) { /* (flushed first: fits) */
            fail(c, 500);
            return -1;
        }
        memcpy(x->out + x->out_len, CONTINUE_100, sizeof CONTINUE_100 - 1);
        x->out_len += sizeof CONTINUE_100 - 1;
    }
    return 0;
}

/* Run the handler; a deferred head (CGI) goes through S_PREPARE. */
static void call_handler(struct conn *c)
{
    struct exchange *x = c->x;
    router_call(&x->rq, &x->resp);
    x->gw = x->rq.mount && (x->rq.mount->kind == MOUNT_CGI || x->rq.mount->kind == MOUNT_APP);
    if (x->resp.deferred.prepare)
        after_flush(c, S_PREPARE); /* earlier answers leave while the head is awaited */
    else
        c->state = S_RESPOND;
}

/* Plain HTTP on an HTTPS port (nginx's 497 answered as 400), and
 * --redirect-https: the same target on the first TLS listener (308 keeps the
 * method and body). */
static void policy_answer(struct conn *c)
{
    static const char speaks_https[] =
        "<!DOCTYPE html>\n<html><head><title>400 Bad Request</title></head><body>\n"
        "<h1>400 Bad Request</h1>\n<p>This port speaks HTTPS: a plain HTTP request was sent "
        "to it. Use https:// in the URL.</p>\n</body></html>\n";
    static const char moved[] = "Moved to HTTPS.\n";
    struct exchange *x = c->x;
    struct http_req *r = &x->req;
    if (c->policy == TP_POLICY_SPEAKS_HTTPS) {
        resp_mem(&x->resp, 400, "text/html; charset=utf-8", speaks_https, sizeof speaks_https - 1);
        x->keep_alive = 0;
        x->linger = 1;
        c->state = S_RESPOND;
        return;
    }
    struct http_str host = env_server_name(r);
    char ip[INET6_ADDRSTRLEN + 2];
    if (!host.len) { /* HTTP/1.0 without Host: the address the client reached */
        union net_addr a;
        socklen_t len = sizeof a;
        char s[INET6_ADDRSTRLEN] = "localhost";
        if (getsockname(c->fd, &a.sa, &len) == 0)
            net_addr_str(&a, s, sizeof s, NULL);
        snprintf(ip, sizeof ip, strchr(s, ':') ? "[%s]" : "%s", s);
        host.p = ip;
        host.len = strlen(ip);
    }
    int li = net_tls_listener();
    int port = li >= 0 ? net_listeners[li].port : 443;
    char portstr[8] = "";
    if (port != 443)
        snprintf(portstr, sizeof portstr, ":%d", port);
    struct http_str path = r->path.len ? r->path : (struct http_str){"/", 1};
    resp_mem(&x->resp, 308, "text/plain; charset=utf-8", moved, sizeof moved - 1);
    resp_header(&x->resp, "Location", "https://%.*s%s%.*s%s%.*s", (int)host.len, host.p, portstr,
                (int)path.len, path.p, r->query.p ? "?" : "", r->query.p ? (int)r->query.len : 0,
                r->query.p ? r->query.p : "");
    if (x->body_left != 0) { /* not read: close after the answer */
        x->keep_alive = 0;
        x->linger = 1;
    }
    c->state = S_RESPOND;
}

/* ---- behind a balancer (docs/deploy.md) ---- */

enum { PRE_DONE, PRE_WAIT, PRE_CLOSE, PRE_FAIL };

/* The PROXY protocol header of a /proxy listener (proxy.h), before anything
 * else, a TLS handshake too: so it is read from the socket itself, beneath
 * every transport. What has arrived is peeked at, and only bytes that
 * belong to the header are taken (all of them while it is incomplete, so a
 * blocking model's poll() does not spin on them; exactly its length when it
 * is complete): what follows stays in the socket for the transport. The
 * header so far is kept in in[]. A header from an untrusted peer, or a
 * malformed one, is answered 400 (plain text, whatever the listener
 * speaks) and logged; bytes that are no PROXY header at all are closed on. */
static int proxy_preamble(struct conn *c)
{
    struct exchange *x = c->x;
    char ip[INET6_ADDRSTRLEN];
    int port = 0;
    if (!c->readable)
        return PRE_WAIT;
    ssize_t n;
    do
        n = net_peek(c->fd, x->in + x->in_len, x->in_cap - x->in_len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->readable = 0;
        return PRE_WAIT;
    }
    if (n <= 0)
        return PRE_CLOSE; /* gone before a header */
    struct proxy_hdr h;
    size_t have = x->in_len, all = have + (size_t)n;
    int r = proxy_parse(x->in, all, &h);
    net_addr_str(&c->peer, ip, sizeof ip, &port);
    if (r == PROXY_BAD && h.none) {
        warn("no PROXY header from %s port %d on a /proxy listener: closing", ip, port);
        return PRE_CLOSE;
    }
    if (!realip_trusted(cfg.trusted, cfg.ntrusted, &c->peer)) {
        warn("PROXY header from %s port %d, not a --trusted-proxy: answering 400", ip, port);
        r = PROXY_BAD;
        h.error = NULL;
    } else if (r == PROXY_BAD) {
        warn("malformed PROXY header from %s port %d (%s): answering 400", ip, port, h.error);
    } else if (r == PROXY_AGAIN && all == x->in_cap) {
        warn("PROXY header from %s port %d longer than %zu bytes: answering 400", ip, port, all);
        r = PROXY_BAD;
    }
    if (r == PROXY_BAD) {
        /* the answer goes out in plain text: no TLS session has begun */
        if (c->tp->close)
            c->tp->close(c);
        c->tp = &transport_plain;
        c->proxy = 0;
        x->in_len = 0;
        fail(c, 400);
        return PRE_FAIL;
    }
    size_t take = r == PROXY_AGAIN ? (size_t)n : (size_t)r - have;
    ssize_t t;
    do
        t = net_take(c->fd, x->in + have, take);
    while (t < 0 && errno == EINTR);
    if (t != (ssize_t)take)
        return PRE_CLOSE; /* cannot be: peeked bytes are there */
    if (r == PROXY_AGAIN) {
        x->in_len = all;
        c->readable = 0; /* taken all there was */
        return PRE_WAIT;
    }
    if (!h.local) { /* the client, for everything: logs, REMOTE_ADDR, --status */
        c->peer = h.src;
        c->local = h.dst;
    }
    if (log_verbose_on) {
        char src[INET6_ADDRSTRLEN];
        int sport = 0;
        net_addr_str(&c->peer, src, sizeof src, &sport);
        vlog("PROXY v%d from %s port %d: %s%s port %d (%u TLVs)", h.version, ip, port,
             h.local ? "local, stays " : "client ", src, sport, h.ntlv);
    }
    c->proxy = 0;
    x->in_len = 0;
    return PRE_DONE; /* c->readable stays: the request may be right behind it */
}

/* A trusted proxy's forwarding header (--forwarded-header) names the
 * client: the right-most address that is not a trusted proxy (realip.h). */
static void forwarded_client(struct conn *c)
{
    struct exchange *x = c->x;
    const struct http_req *r = &x->req;
    if (!realip_trusted(cfg.trusted, cfg.ntrusted, &c->peer))
        return; /* anyone may write these headers: believed from trusted peers only */
    const char *name = cfg.forwarded_header == REALIP_FORWARDED ? "Forwarded" : "X-Forwarded-For";
    struct http_str vals[16];
    int nv = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        if (!http_str_ieq(r->headers[i].name, name))
            continue;
        if (nv == (int)(sizeof vals / sizeof vals[0])) { /* keep the right-most fields */
            memmove(vals, vals + 1, sizeof vals - sizeof vals[0]);
            nv--;
        }
        vals[nv++] = r->headers[i].value;
    }
    if (nv && realip_resolve(vals, nv, cfg.forwarded_header, cfg.trusted, cfg.ntrusted, &c->peer,
                             &x->client))
        x->forwarded = 1;
}

/* --health PATH: 200 while this instance takes work; 503 once it drains
 * (--drain after SIGTERM) or stops, so a balancer takes it out first. */
static int health_answer(struct conn *c)
{
    static const char ok[] = "ok\n", draining[] = "draining\n";
    struct exchange *x = c->x;
    const struct http_req *r = &x->req;
    size_t n = strlen(cfg.health);
    if (r->path.len != n || memcmp(r->path.p, cfg.health, n) != 0)
        return 0;
    int out = sig_stop || (sb && sb->draining);
    if (out)
        resp_mem(&x->resp, 503, "text/plain; charset=utf-8", draining, sizeof draining - 1);
    else
        resp_mem(&x->resp, 200, "text/plain; charset=utf-8", ok, sizeof ok - 1);
    resp_header(&x->resp, "Cache-Control", "no-store");
    if (x->body_left != 0) { /* not read: close after the answer */
        x->keep_alive = 0;
        x->linger = 1;
    }
    c->state = S_RESPOND;
    return 1;
}

static void begin_request(struct conn *c)
{
    struct exchange *x = c->x;
    struct http_req *r = &x->req;
    c->nreq++;
    if (c->nreq == 2 && net_tls_listener() < 0) /* keep-alive: see nodelay_before_write */
        conn_nodelay(c);
    if (log_verbose_on) /* (the test here: no call into log.c's code per request) */
        vlog_head("< ", x->in, x->head_len);
    if (sb_self) { /* for the master's crash report and the status counters */
        const char *rl;
        size_t n = request_line_of(x, &rl);
        sb_count_request(rl, n);
    }

    x->keep_alive = r->keep_alive && c->nreq < cfg.max_keepalive_requests && !sig_stop;
    x->is_head = r->m == HTTP_M_HEAD;
    x->gw = 0;
    x->body_seen = 0;
    x->body_left = r->chunked ? -1 : (r->content_length > 0 ? r->content_length : 0);
    if (r->chunked)
        http_chunked_init(&x->chunk);
    resp_init(&x->resp);
    x->rq.tls = c->tp->facts ? c->tp->facts(c) : NULL;
    /* until a handler is known to read it, a body is one nobody reads */
    x->body_limit = cfg.max_unread_body < cfg.max_body ? cfg.max_unread_body : cfg.max_body;
    if (cfg.ntrusted)
        forwarded_client(c);

    if (c->policy != TP_POLICY_NONE) { /* the listener answers for itself (transport.h) */
        policy_answer(c);
        return;
    }
    if (cfg.health && health_answer(c))
        return;
    if (r->content_length > cfg.max_body) {
        x->body_limit = cfg.max_body;
        shed_413(c, r->content_length, 1);
        return;
    }
    if (r->m == HTTP_M_OTHER) {
        fail(c, 501);
        return;
    }
    x->rq.h = r;
    x->rq.path = NULL;
    x->rq.path_len = 0;
    x->rq.mount = NULL;
    x->rq.peer = x->forwarded ? &x->client : &c->peer;
    x->rq.body_fd = -1;
    x->rq.body_len = 0;
    x->rq.crash_fd = c->fd;
    x->rq.crash_ok = x->out_len == 0;
    /* the normalised path is never longer than the target's path */
    char *pathbuf = x->path;
    size_t cap = sizeof x->path;
    if (r->path.len + 1 > cap) {
        size_t want = r->path.len + 1 < PATH_MAX ? r->path.len + 1 : PATH_MAX;
        if (x->path_big_cap < want) {
            char *p = realloc(x->path_big, want);
            if (!p) {
                fail(c, 503);
                return;
            }
            x->path_big = p;
            x->path_big_cap = want;
        }
        pathbuf = x->path_big;
        cap = x->path_big_cap;
    }
    int routed = router_route(&x->rq, pathbuf, cap, &x->resp);
    /* Limits by cost: a body a handler reads is streamed through a spool
     * file (disk, bounded by --spool-budget), one nobody reads is only
     * read and dropped, so it stays small */
    if (routed && router_wants_body(x->rq.mount))
        x->body_limit = cfg.max_body;
    if (r->content_length > x->body_limit) {
        resp_release(&x->resp);
        shed_413(c, r->content_length, 1);
        return;
    }
    if (routed && x->rq.mount->kind != MOUNT_STATIC) {
        if (c->local.sa.sa_family == AF_UNSPEC) { /* once per connection */
            socklen_t len = sizeof c->local;
            if (getsockname(c->fd, &c->local.sa, &len) < 0)
                c->local.sa.sa_family = AF_UNSPEC;
        }
        x->rq.local = c->local;
    }
    if (routed && router_wants_body(x->rq.mount) && x->body_left != 0) {
        /* answers queued before this request leave first (then "100 Continue",
         * which start_spool queues): they must not wait for this body */
        after_flush(c, S_SPOOL_START);
        return;
    }
    c->state = S_RESPOND;
    if (routed)
        call_handler(c); /* S_RESPOND, or S_PREPARE for a deferred head */

    if (x->body_left == 0) {
        return;
    } else if (r->expect_continue) {
        /* The client waits for "100 Continue" before sending the body; no
         * handler here wants it, so answer now and close instead. */
        x->keep_alive = 0;
        c->state = S_RESPOND;
    } else {
        /* the handler answered; the body is read (and dropped) before its
         * answer is written, so flush what came before it meanwhile */
        after_flush(c, S_BODY);
    }
}

/* Write body bytes to the spool file (when spooling). 0 or -1 (state set). */
static int spool_reserve(struct conn *c, int64_t n);

static int sink(struct conn *c, const char *p, size_t n)
{
    struct exchange *x = c->x;
    if (x->spool_fd >= 0 && x->body_left < 0 && n && spool_reserve(c, (int64_t)n) < 0)
        return -1; /* chunked: counted as it comes */
    while (x->spool_fd >= 0 && n > 0) {
        ssize_t w = write(x->spool_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_error("writing a request body to a temporary file:");
            fail(c, 503);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read the body (into the spool file, or discarded) so the next request on
 * the connection is found. Returns 1 when done, 0 when more input is needed,
 * -1 on failure (state set). */
static int read_body(struct conn *c)
{
    struct exchange *x = c->x;
    size_t off = x->head_len;
    size_t avail = x->in_len - off;
    if (x->body_left > 0) {
        size_t take = avail < (uint64_t)x->body_left ? avail : (size_t)x->body_left;
        if (sink(c, x->in + off, take) < 0)
            return -1;
        memmove(x->in + off, x->in + off + take, avail - take);
        x->in_len -= take;
        x->body_left -= (int64_t)take;
        return x->body_left == 0;
    }
    size_t len = avail;
    int rc = http_chunked_decode(&x->chunk, x->in + off, &len);
    if (rc == HTTP_BAD) {
        fail(c, x->chunk.status ? x->chunk.status : 400);
        return -1;
    }
    x->body_seen += (int64_t)len;
    if (x->body_seen > x->body_limit) {
        shed_413(c, x->body_seen, 0);
        return -1;
    }
    if (sink(c, x->in + off, len) < 0)
        return -1;
    if (rc == HTTP_AGAIN) {
        x->in_len = off;
        return 0;
    }
    memmove(x->in + off, x->in + off + len, (size_t)rc);
    x->in_len = off + (size_t)rc;
    x->body_left = 0;
    return 1;
}

/* --compress on a gateway's (CGI, app, WSGI) response, once, before its
 * head is built (docs/static.md, "App, CGI and WSGI responses"): a text
 * type with a body worth it, not coded or ranged already, no
 * Cache-Control: no-transform, for a GET (not HEAD) without Range, gets
 * Vary; if the client accepts gzip, Content-Encoding too, and its body is
 * coded as it is sent (x->z; the length becomes unknown: chunked, or
 * close-delimited on HTTP/1.0). What the header lines say is read in one
 * place: owned_hdr_facts(). */
static void gw_compress(struct exchange *x, int has_body)
{
    struct response *rs = &x->resp;
    if (!cfg.compress_gateways || !has_body || rs->status == 206 || rs->body == BODY_NONE ||
        (rs->length >= 0 && rs->length < cfg.compress_min) || http_req_header(&x->req, "Range"))
        return;
    struct hdr_facts f;
    owned_hdr_facts(rs->hdr, rs->hdr_len, &f);
    if (f.encoded || f.range || f.no_transform)
        return;
    char type[256];
    if (!rs->content_type && (!f.type || f.type_len >= sizeof type))
        return;
    snprintf(type, sizeof type, "%.*s", (int)f.type_len, f.type ? f.type : "");
    if (!compress_type_ok(rs->content_type ? rs->content_type : type))
        return;
    static const char vary[] = "Vary: Accept-Encoding\r\n", coded[] = "Content-Encoding: gzip\r\n";
    if (rs->hdr_len + sizeof vary + sizeof coded > sizeof rs->hdr)
        return; /* (no room for the fields: sent as it is) */
    if (!f.vary_ae) { /* another Vary line adds to the app's (a list field) */
        memcpy(rs->hdr + rs->hdr_len, vary, sizeof vary - 1);
        rs->hdr_len += sizeof vary - 1;
    }
    if (x->is_head)
        return; /* the head as it is: nothing is coded for a HEAD */
    const struct http_header *ae = http_req_header(&x->req, "Accept-Encoding");
    enum content_coding e = accept_enc_choose(ae ? ae->value.p : NULL, ae ? ae->value.len : 0,
                                              ENC_BIT(ENC_GZIP));
    if (e != ENC_GZIP || !(x->z = zs_new(e)))
        return; /* identity (or no memory for a stream: sent as it is) */
    memcpy(rs->hdr + rs->hdr_len, coded, sizeof coded - 1);
    rs->hdr_len += sizeof coded - 1;
    x->z_left = rs->length; /* (memory, file: their bytes; a stream: -1) */
    x->z_eof = x->z_dirty = 0;
    rs->length = -1;
}

/* Put the response head (and a small body) into out. */
static void respond(struct conn *c)
{
    struct exchange *x = c->x;
    struct response *rs = &x->resp;
    int http10 = x->req.version_minor == 0;
    if (sig_stop || rs->close)
        x->keep_alive = 0;
    int has_body = http_status_has_body(rs->status);
    /* Room for the head, and for a small memory body (cached files), which
     * is always copied now and never left pending; else flush first. */
    size_t need = 4096 + RESP_HDR_CAP;
    if (rs->body == BODY_MEM && has_body && !x->is_head && rs->length <= SMALL_FILE)
        need += (size_t)rs->length;
    if (x->out_len && x->out_len + need > OUT_CAP) {
        after_flush(c, S_RESPOND);
        return;
    }
    if (x->gw && cfg.compress)
        gw_compress(x, has_body);
    x->chunked_out = 0;
    if (has_body && rs->length < 0) {
        if (http10)
            x->keep_alive = 0; /* close-delimited */
        else
            x->chunked_out = 1;
    }
    if (!has_body || x->is_head)
        resp_release(rs); /* HEAD: same head, no body */
    size_t hl = http_build_head(rs, x->keep_alive, http10, x->chunked_out,
                                x->out + x->out_len, OUT_CAP - x->out_len);
    if (hl == 0) { /* cannot happen: heads are bounded by RESP_HDR_CAP */
        log_error("response head too large for %d", rs->status);
        x->keep_alive = 0;
        x->linger = 1;
        resp_release(rs);
        c->state = S_WRITE;
        return;
    }
    if (log_verbose_on)
        vlog_head("> ", x->out + x->out_len, hl);
    x->out_len += hl;
    x->log_status = rs->status; /* logged once sent (log_done) */
    x->body_sent = 0;
    x->body_from = x->body_to = x->out_len;

    x->pending = 0;
    if (x->z) {
        x->pending = 1; /* coded as it is sent (z_pull) */
    } else if (rs->body == BODY_MEM && (size_t)rs->length <= OUT_CAP - x->out_len) {
        memcpy(x->out + x->out_len, rs->mem, (size_t)rs->length);
        x->out_len += (size_t)rs->length;
        x->body_to = x->out_len;
        resp_release(rs);
    } else if (rs->body == BODY_FILE && rs->length <= SMALL_FILE &&
               (size_t)rs->length <= OUT_CAP - x->out_len) {
        /* small file: one pread into out, sent with the head (and batched) */
        ssize_t n = pread(rs->fd, x->out + x->out_len, (size_t)rs->length, rs->off);
        if (n != (ssize_t)rs->length) { /* the file shrank under us: we promised a length */
            warn("short read of a file for %d", rs->status);
            x->keep_alive = 0;
        } else {
            x->out_len += (size_t)n;
            x->body_to = x->out_len;
        }
        resp_release(rs);
    } else if (rs->body != BODY_NONE) {
        x->pending = 1;
        if (rs->body == BODY_FILE) {
            /* cork: the head waits for the file's first pages, and sendfile
             * fills whole segments instead of pushing each piece (nodelay) */
            x->corked = c->tp->cork(c, 1) == 0;
        }
    }
    if (!x->keep_alive)
        x->closing = 1;

    if (!x->pending && !x->closing) {
        /* complete in out[], which batches it with the next answers: logged now */
        x->body_sent = x->body_to - x->body_from;
        log_done(c, x);
        consume_request(x);
        /* more pipelined bytes: parse the next request before writing, so all
         * the answers to one read leave in one write */
        set_state(c, x->in_len ? S_HEAD : S_WRITE);
        return;
    }
    set_state(c, S_WRITE);
}

#define WRITE_ALL_SENT 3

/* A gateway's body coded on the fly (gw_compress): the next coded piece
 * into out[] (a chunk on HTTP/1.1), taking the source as it comes: memory
 * in one go, a file ZS_BUF at a time, a stream piece by piece. Whenever the
 * producer has nothing more for now, what it gave is flushed (Z_SYNC_FLUSH)
 * and sent, so streamed output reaches the client as it is written, without
 * a flush (and its bytes) per small piece. At most Z_PULL_MAX source bytes
 * a step (an event loop stays responsive). At the end, the last-chunk, and
 * the stream is freed. 0: out[] has bytes (or the body is complete);
 * FH_AGAIN: the producer is silent (*wfd); -1: failed. */
#define Z_PULL_MAX (256 * 1024)
static int z_pull(struct exchange *x, int *wfd)
{
    struct response *rs = &x->resp;
    char *dst = x->out + (x->chunked_out ? CHUNK_PREFIX : 0);
    size_t cap = OUT_CAP - 32, got = 0, taken = 0;
    int flushed = 0;
    while (got < cap) {
        long n = zs_output(x->z, dst + got, cap - got);
        if (n < 0) {
            warn("compressing a response body failed; closing the connection");
            return -1;
        }
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        /* the input given so far is taken: give more, unless done */
        if (zs_finished(x->z) || (got && flushed))
            break;
        if (x->z_eof) /* cannot be: finishing ends with zs_finished */
            return -1;
        if (taken >= Z_PULL_MAX) { /* enough for one step: out with it */
            zs_input(x->z, NULL, 0, ZS_FLUSH);
            x->z_dirty = 0;
            flushed = 1;
            continue;
        }
        const char *in = zs_buf(x->z);
        ssize_t len = 0;
        enum zs_mode mode = ZS_MORE;
        if (rs->body == BODY_MEM) {
            in = rs->mem;
            len = (ssize_t)x->z_left;
            rs->mem += len;
            x->z_left = 0;
        } else if (rs->body == BODY_FILE && x->z_left > 0) {
            size_t want = x->z_left < ZS_BUF ? (size_t)x->z_left : ZS_BUF;
            do
                len = pread(rs->fd, zs_buf(x->z), want, rs->off);
            while (len < 0 && errno == EINTR);
            if (len <= 0) { /* the file shrank: its promised length cannot be kept */
                warn("file shrank while being sent; closing the connection");
                return -1;
            }
            rs->off += len;
            x->z_left -= len;
        } else if (rs->body == BODY_STREAM) {
            len = rs->stream.read(rs->stream.ctx, zs_buf(x->z), ZS_BUF, wfd);
            if (len == FH_AGAIN) { /* nothing more for now: what came goes out */
                if (x->z_dirty) {
                    zs_input(x->z, NULL, 0, ZS_FLUSH);
                    x->z_dirty = 0;
                    flushed = 1;
                    continue;
                }
                if (got)
                    break;
                return FH_AGAIN;
            }
            if (len < 0)
                return -1;
        }
        taken += (size_t)len;
        x->z_dirty = len > 0;
        if (len == 0) {
            x->z_eof = 1;
            mode = ZS_FINISH;
        }
        zs_input(x->z, in, (size_t)len, mode);
    }
    if (got) {
        if (x->chunked_out) {
            char hex[20];
            int h = snprintf(hex, sizeof hex, "%zx\r\n", got);
            x->out_sent = CHUNK_PREFIX - (size_t)h;
            memcpy(x->out + x->out_sent, hex, (size_t)h);
            memcpy(x->out + CHUNK_PREFIX + got, "\r\n", 2);
            x->out_len = CHUNK_PREFIX + got + 2;
            x->body_from = CHUNK_PREFIX; /* the coded piece, not its framing */
        } else {
            x->out_len = got;
            x->body_from = 0;
        }
        x->body_to = x->body_from + got; /* the access log counts what is written */
        return 0;
    }
    if (x->chunked_out) { /* finished, all of it out */
        memcpy(x->out, "0\r\n\r\n", 5);
        x->out_len = 5;
    }
    zs_free(x->z);
    x->z = NULL;
    resp_release(rs);
    x->pending = 0;
    return 0;
}

/* Send out[], then the pending body. Returns CONN_WRITE/CONN_READ to wait,
 * -1 on a dead connection, WRITE_ALL_SENT when everything is sent. */
/* TCP_NODELAY when it matters (nginx's rule). Nagle holds a small segment
 * only while sent data is unacknowledged, so the first write of a
 * connection is never held, and a connection that writes one response and
 * closes needs no syscall for it. Before any later write - a second request
 * (begin_request), a body after its head, a stream's next piece - the
 * socket gets TCP_NODELAY. (A corked file body is pushed by the uncork.)
 * With a TLS listener, net_accept sets it on every socket, as before: the
 * TLS layer writes on its own (handshake, session tickets). */
static void nodelay_before_write(struct conn *c, struct exchange *x)
{
    if (!x->wrote)
        x->wrote = 1;
    else if (!x->nodelay && !x->corked && c->nreq < 2 && net_tls_listener() < 0) {
        conn_nodelay(c);
        x->nodelay = 1;
    }
}

/* Everything conn.c wrote has been handed to the transport; has it all left? */
static int all_sent(struct conn *c)
{
    if (c->tp->flush && c->tp->flush(c) < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? CONN_WRITE : -1;
    return WRITE_ALL_SENT;
}

/* Is what write_out sends now the end of the connection (if all taken)?
 * The same rule ends the connection once all is sent (S_WRITE). */
static int last_write(const struct exchange *x)
{
    return x->closing && !x->linger && !x->after_flush;
}

static int write_out(struct conn *c)
{
    struct exchange *x = c->x;
    struct response *rs = &x->resp;
    for (;;) {
        if (x->out_sent < x->out_len) {
            struct iovec iov[2];
            int n = 1;
            iov[0].iov_base = x->out + x->out_sent;
            iov[0].iov_len = x->out_len - x->out_sent;
            if (x->pending && rs->body == BODY_MEM && !x->z) { /* large memory body: one writev */
                iov[1].iov_base = (void *)(uintptr_t)rs->mem;
                iov[1].iov_len = (size_t)rs->length;
                n = 2;
            }
            nodelay_before_write(c, x);
            c->tp_last = last_write(x) && (!x->pending || n == 2);
            ssize_t w = c->tp->writev(c, iov, n);
            c->tp_last = 0;
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return CONN_WRITE;
                return -1;
            }
            size_t first = iov[0].iov_len;
            if ((size_t)w < first) {
                count_out(x, x->out_sent, x->out_sent + (size_t)w);
                x->out_sent += (size_t)w;
                return CONN_WRITE; /* the kernel buffer is full: wait for room */
            }
            count_out(x, x->out_sent, x->out_len);
            x->out_sent = x->out_len = 0;
            x->body_from = x->body_to = 0;
            if (n == 2) {
                size_t rest = (size_t)w - first;
                x->body_sent += rest;
                rs->mem += rest;
                rs->length -= (int64_t)rest;
                if (rs->length == 0) {
                    resp_release(rs);
                    x->pending = 0;
                }
            }
            continue;
        }
        if (!x->pending)
            return all_sent(c);
        if (x->z) {
            int wfd = -1;
            int r = z_pull(x, &wfd);
            if (r == FH_AGAIN) { /* a silent producer: as for a stream below */
                if (c->tp->broken(c))
                    return -1;
                c->wait_fd = wfd;
                return CONN_READ;
            }
            if (r < 0)
                return -1;
            continue;
        }
        if (rs->body == BODY_MEM) {
            struct iovec one = {(void *)(uintptr_t)rs->mem, (size_t)rs->length};
            nodelay_before_write(c, x);
            c->tp_last = last_write(x);
            ssize_t w = c->tp->writev(c, &one, 1);
            c->tp_last = 0;
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return (errno == EAGAIN || errno == EWOULDBLOCK) ? CONN_WRITE : -1;
            }
            rs->mem += w;
            rs->length -= w;
            x->body_sent += (uint64_t)w;
            if (rs->length == 0) {
                resp_release(rs);
                x->pending = 0;
            }
            continue;
        }
        if (rs->body == BODY_FILE) {
            size_t chunk = rs->length > (1 << 30) ? (1 << 30) : (size_t)rs->length;
            nodelay_before_write(c, x);
            c->tp_last = last_write(x) && chunk == (uint64_t)rs->length;
            ssize_t w = c->tp->sendfile(c, rs->fd, &rs->off, chunk);
            c->tp_last = 0;
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return (errno == EAGAIN || errno == EWOULDBLOCK) ? CONN_WRITE : -1;
            }
            if (w == 0) { /* the file shrank: the promised length cannot be kept */
                warn("file shrank while being sent; closing the connection");
                return -1;
            }
            rs->length -= w;
            x->body_sent += (uint64_t)w;
            if (rs->length == 0) {
                resp_release(rs);
                x->pending = 0;
                if (x->corked) { /* out goes the last partial segment */
                    c->tp->cork(c, 0);
                    x->corked = 0;
                }
            }
            continue;
        }
        if (rs->body == BODY_STREAM) {
            /* pull the next piece into out, framed as a chunk if needed */
            size_t room = OUT_CAP - 32;
            int wfd = -1;
            char *dst = x->out + (x->chunked_out ? CHUNK_PREFIX : 0);
            ssize_t n = rs->stream.read(rs->stream.ctx, dst, room, &wfd);
            if (n == FH_AGAIN) {
                /* the producer is silent: has the client's connection broken
                 * meanwhile (a reset)? Then abort, and stream.close stops the
                 * producer. A FIN alone may be a half-close by a client that
                 * still reads: it is noticed at the next write instead. */
                if (c->tp->broken(c))
                    return -1;
                c->wait_fd = wfd;
                return CONN_READ;
            }
            if (n < 0)
                return -1;
            if (n == 0) {
                if (x->chunked_out) {
                    memcpy(x->out, "0\r\n\r\n", 5);
                    x->out_len = 5;
                }
                resp_release(rs);
                x->pending = 0;
                continue;
            }
            if (x->chunked_out) {
                char hex[20];
                int h = snprintf(hex, sizeof hex, "%zx\r\n", (size_t)n);
                x->out_sent = CHUNK_PREFIX - (size_t)h;
                memcpy(x->out + x->out_sent, hex, (size_t)h);
                memcpy(x->out + CHUNK_PREFIX + n, "\r\n", 2);
                x->out_len = CHUNK_PREFIX + (size_t)n + 2;
                x->body_from = CHUNK_PREFIX; /* the piece, not its framing */
            } else {
                x->out_len = (size_t)n;
                x->body_from = 0;
            }
            x->body_to = x->body_from + (size_t)n;
            continue;
        }
        return all_sent(c);
    }
}

/* The peer may still be sending (an unread body, an error mid-request):
 * half-close and read until EOF, so our answer is not destroyed by a reset. */
static int linger_step(struct conn *c)
{
    struct exchange *x = c->x;
    char buf[4096];
    for (;;) {
        ssize_t n = c->tp->recv(c, buf, sizeof buf);
        if (n > 0) {
            x->linger_bytes += (size_t)n;
            if (x->linger_bytes > LINGER_BYTES)
                return CONN_DONE;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return CONN_READ;
        return CONN_DONE;
    }
}

/* ---- the driver ---- */

static int step(struct conn *c);

int conn_step(struct conn *c)
{
    c->tp_want = 0;
    int r = step(c);
    /* a transport that waits for the other direction (TLS) says which */
    if (r != CONN_DONE && c->tp_want && c->wait_fd == c->fd)
        r = c->tp_want;
    return r;
}

static int step(struct conn *c)
{
    c->wait_fd = c->fd;
    for (;;) {
        struct exchange *x = c->x;
        switch (c->state) {
        case S_IDLE: {
            if (c->proxy) { /* a /proxy listener: the PROXY header comes first */
                if (!x && !(x = c->x = x_get(0)))
                    return CONN_DONE;
                int p = proxy_preamble(c);
                if (p == PRE_WAIT)
                    return CONN_READ; /* (keeping in[]: the header so far) */
                if (p == PRE_CLOSE)
                    return CONN_DONE;
                if (p == PRE_FAIL)
                    break; /* fail() set S_RESPOND */
            }
            if (!c->readable) { /* nothing to read: give the buffers back and wait */
                if (x) {
                    x_put(x);
                    c->x = NULL;
                }
                return CONN_READ;
            }
            if (!x) {
                x = c->x = x_get(0);
                if (!x)
                    return CONN_DONE; /* out of memory: drop this connection only */
            }
            ssize_t n = fill(c);
            if (n == FH_AGAIN) {
                /* idle: give the buffers back until bytes arrive */
                x_put(x);
                c->x = NULL;
                return CONN_READ;
            }
            if (n <= 0)
                return CONN_DONE;
            set_state(c, S_HEAD);
            break;
        }
        case S_HEAD: {
            struct http_limits lim = limits();
            int r = http_parse_request(&x->req, x->in, x->in_len, &lim);
            if (r > 0) {
                x->head_len = (size_t)r;
                begin_request(c);
                break;
            }
            if (r == HTTP_BAD) {
                if (log_verbose_on)
                    vlog("bad request: %d %s", x->req.status, x->req.error ? x->req.error : "");
                x->head_len = 0;
                int st = x->req.status ? x->req.status : 400;
                if (st == 414)
                    shed(c, 414, SHED_414, "request-line longer than --max-line");
                else if (st == 431)
                    shed(c, 431, SHED_431,
                         x->req.nheaders >= cfg.max_headers
                             ? "more header fields than --max-headers"
                             : "request head larger than --max-header-size");
                else
                    fail(c, st);
                break;
            }
            if (x->out_len) { /* answers to earlier pipelined requests go out first */
                set_state(c, S_WRITE);
                break;
            }
            if (x->in_len >= x->in_cap) {
                shed(c, 431, SHED_431, "request head larger than --max-header-size");
                break;
            }
            ssize_t n = fill(c);
            if (n == FH_AGAIN)
                return CONN_READ;
            if (n <= 0)
                return CONN_DONE; /* the client went away mid-head */
            c->rate_bytes += (uint64_t)n;
            rate_apply(c); /* --min-rate; the head's own timeout is not restarted */
            break;
        }
        case S_SPOOL_START:
            if (start_spool(c) < 0)
                break; /* fail() set S_RESPOND */
            after_flush(c, S_SPOOL); /* "100 Continue" first, if queued */
            break;
        case S_BODY:
        case S_SPOOL: {
            int r = read_body(c);
            if (r < 0)
                break; /* fail() set S_RESPOND */
            if (r == 1 && c->state == S_SPOOL) {
                x->rq.body_len = lseek(x->spool_fd, 0, SEEK_CUR);
                lseek(x->spool_fd, 0, SEEK_SET);
                x->rq.body_fd = x->spool_fd;
                call_handler(c);
                break;
            }
            if (r == 1) {
                c->state = S_RESPOND;
                break;
            }
            ssize_t n = fill(c);
            if (n == FH_AGAIN)
                return CONN_READ;
            if (n <= 0)
                return CONN_DONE;
            c->rate_bytes += (uint64_t)n;
            arm(c, W_BODY); /* --body-timeout bounds a stall, --min-rate a trickle */
            break;
        }
        case S_PREPARE: {
            int wfd = -1;
            int r = x->resp.deferred.prepare(x->resp.deferred.ctx, &x->resp, &wfd);
            if (r == FH_AGAIN) {
                if (c->rdhup && (!x->resp.deferred.fin_ok || c->tp->broken(c))) {
                    /* the client hung up while the handler works on its
                     * answer (nginx: "client prematurely closed connection"):
                     * stop the producer now (a CGI script's process group is
                     * killed) instead of holding its slot until the timeout */
                    if (log_verbose_on)
                        vlog("client closed the connection while waiting for the handler's "
                             "head; stopping the handler");
                    x->resp.deferred.prepare = NULL;
                    resp_release(&x->resp);
                    log_access(c, x, 499, 0);
                    return CONN_DONE;
                }
                c->wait_fd = wfd;
                return CONN_READ;
            }
            x->resp.deferred.prepare = NULL;
            if (r < 0) {
                int st = x->resp.status >= 500 ? x->resp.status : 502;
                fail(c, st);
                break;
            }
            c->state = S_RESPOND;
            break;
        }
        case S_RESPOND:
            respond(c); /* sets S_WRITE (and its deadline) or S_HEAD */
            break;
        case S_WRITE: {
            size_t before = x->out_sent;
            int64_t body_before = x->resp.length; /* sendfile/send progress */
            int r = write_out(c);
            if (r == CONN_WRITE || r == CONN_READ) {
                /* --write-timeout bounds a stall, not a transfer: any progress
                 * (head bytes or body bytes) restarts it */
                if (r == CONN_WRITE &&
                    (x->out_sent != before || x->resp.length != body_before ||
                     c->wait_reason != W_WRITE))
                    arm(c, W_WRITE);
                else if (r == CONN_READ) /* a silent producer: its own timeout (--cgi-timeout) */
                    arm(c, W_HANDLER);
                return r;
            }
            if (r < 0)
                return CONN_DONE;
            /* everything sent */
            log_done(c, x);
            if (x->after_flush) {
                int next = x->after_flush;
                x->after_flush = 0;
                set_state(c, next);
                break;
            }
            if (last_write(x)) /* (what write_out told the transport: c->tp_last) */
                return CONN_DONE;
            if (x->closing) { /* and lingering */
                c->tp->shutdown_wr(c);
                x->linger_bytes = 0;
                set_state(c, S_LINGER);
                break;
            }
            if (x->head_len) { /* a response that was pending (file/stream) is complete */
                consume_request(x);
            }
            set_state(c, x->in_len ? S_HEAD : S_IDLE);
            break;
        }
        case S_LINGER:
            return linger_step(c);
        default:
            return CONN_DONE;
        }
    }
}

/* A timeout's log line names the timeout, the client and the request, so
 * that whoever reads it knows which flag to look at and for what. */
static void warn_timeout(struct conn *c, const char *which, int ms, const char *what)
{
    char peer[INET6_ADDRSTRLEN];
    int port = 0;
    net_addr_str(&c->peer, peer, sizeof peer, &port);
    const char *rl = "";
    size_t n = c->x ? request_line_of(c->x, &rl) : 0;
    if (n)
        warn("%s timeout (%d ms) from %s port %d on \"%.*s\"; %s", which, ms, peer, port,
             (int)(n > 200 ? 200 : n), rl, what);
    else
        warn("%s timeout (%d ms) from %s port %d; %s", which, ms, peer, port, what);
}

void conn_timeout(struct conn *c)
{
    struct exchange *x = c->x;
    if ((c->state == S_HEAD || c->state == S_BODY || c->state == S_SPOOL) && x && rate_cut(c) &&
        !(c->state == S_HEAD && (x->in_len == 0 || x->out_len))) {
        char why[200];
        snprintf(why, sizeof why,
                 "%s too slow: %llu bytes in %llu ms, below --min-rate (%d bytes/s)%s",
                 c->state == S_HEAD ? "request head" : "request body",
                 (unsigned long long)c->rate_bytes, (unsigned long long)(now_ms() - c->rate_t0),
                 cfg.min_rate, is_busy() ? " while every process is busy" : "");
        if (c->state == S_HEAD)
            x->head_len = 0;
        shed(c, 408, SHED_MIN_RATE, why);
        return;
    }
    switch (c->state) {
    case S_HEAD:
        if (x && x->in_len > 0 && !x->out_len) {
            warn_timeout(c, waits[W_HEADER].name, wait_ms(c, W_HEADER),
                         "the request head is incomplete: answering 408 (--header-timeout)");
            x->head_len = 0;
            fail(c, 408);
            return;
        }
        break;
    case S_BODY:
    case S_SPOOL:
        warn_timeout(c, waits[W_BODY].name, wait_ms(c, W_BODY),
                     "the request body stalled: answering 408 (--body-timeout)");
        fail(c, 408);
        return;
    case S_PREPARE:
        warn_timeout(c, waits[W_HANDLER].name, wait_ms(c, W_HANDLER),
                     "no response head from the handler: answering 504");
        x->resp.deferred.prepare = NULL;
        fail(c, 504);
        return;
    case S_WRITE:
        if (c->wait_reason == W_HANDLER) /* the producer went silent, not the client */
            warn_timeout(c, waits[W_HANDLER].name, wait_ms(c, W_HANDLER),
                         "the handler's body stalled: closing");
        else
            warn_timeout(c, waits[W_WRITE].name, wait_ms(c, W_WRITE),
                         "the client stopped reading: closing (--write-timeout)");
        break;
    default:
        break;
    }
    c->state = S_DONE;
}

/* The blocking models' wait (serve.c) asks again, every little while, for
 * a connection that waits for its client: if every process has become busy
 * meanwhile, the shorter timeouts apply now (never a later deadline). */
void conn_recheck(struct conn *c)
{
    if (c->state != S_IDLE && c->state != S_HEAD && c->state != S_BODY && c->state != S_SPOOL &&
        c->state != S_LINGER)
        return;
    if (!is_busy())
        return;
    uint64_t d = c->deadline;
    if (c->state == S_LINGER) {
        if (c->rate_t0 + BUSY_LINGER_MS < d)
            c->deadline = c->rate_t0 + BUSY_LINGER_MS;
        return;
    } else if (c->state == S_IDLE) {
        uint64_t cap = c->rate_t0 + (c->nreq ? BUSY_KEEPALIVE_MS : BUSY_HEADER_MS);
        if (cap < d)
            d = cap;
    } else {
        if (c->state == S_HEAD && c->rate_t0 + BUSY_HEADER_MS < c->hard_deadline)
            c->hard_deadline = c->rate_t0 + BUSY_HEADER_MS;
        uint64_t due = rate_due(c);
        due = due < c->hard_deadline ? due : c->hard_deadline;
        if (due < d)
            d = due;
    }
    if (d < c->deadline) {
        c->deadline = d;
        warn_limited(sb_limit(SB_LIMIT_BUSY),
                     "every process is busy (--max-workers %d): shorter timeouts for slow "
                     "clients: head %d ms, keep-alive %d ms, --min-rate grace %d ms",
                     cfg.max_workers, BUSY_HEADER_MS, BUSY_KEEPALIVE_MS, MIN_RATE_BUSY_GRACE_MS);
    }
}
