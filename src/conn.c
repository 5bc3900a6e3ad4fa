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
#include "config.h"
#include "handler.h"
#include "http_parse.h"
#include "http_resp.h"
#include "log.h"
#include "environ.h"
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
    int after_flush;   /* a state to enter once out[] is sent (0: none): a request
                          that will wait (for its body, a CGI head, room in out)
                          first sends the answers queued before it */
    int spool_fd;      /* the request body for the handler (S_SPOOL), or -1 */
    int corked;        /* TCP_CORK is on while a file body is sent */
    int log_status;    /* the answer being sent, logged when it is finished or
                          aborted (access log); 0: none */
    uint64_t body_sent; /* ...its body bytes written so far */
    size_t body_from, body_to; /* ...its body bytes in out[] (offsets), counted as they leave */
    size_t linger_bytes;
    char path[PATH_MAX];
    char *in;
    char out[OUT_CAP];
};

static struct exchange *free_list;
static unsigned free_count;

static struct exchange *x_get(void)
{
    struct exchange *x = free_list;
    if (x) {
        free_list = x->next_free;
        free_count--;
    } else {
        /* head buffer: the parser reports 431 past max_head, so it never fills up */
        size_t in_cap = cfg.max_head + 8192;
        x = malloc(sizeof *x + in_cap);
        if (!x)
            return NULL;
        x->in = (char *)(x + 1);
        x->in_cap = in_cap;
    }
    x->in_len = 0;
    x->out_len = x->out_sent = 0;
    x->head_len = 0;
    x->closing = x->linger = x->pending = x->after_flush = 0;
    x->spool_fd = -1;
    x->corked = 0;
    x->log_status = 0;
    x->body_from = x->body_to = 0;
    resp_init(&x->resp);
    http_req_init(&x->req);
    return x;
}

static void spool_close(struct exchange *x)
{
    if (x->spool_fd >= 0)
        close(x->spool_fd);
    x->spool_fd = -1;
}

static void x_put(struct exchange *x)
{
    resp_release(&x->resp);
    spool_close(x);
    if (free_count >= 64) { /* keep a few for reuse: no malloc per request */
        free(x);
        return;
    }
    x->next_free = free_list;
    free_list = x;
    free_count++;
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
    c->peer = *peer;
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

static int wait_ms(const struct conn *c, enum wait_reason w)
{
    switch (w) {
    case W_KEEPALIVE: return cfg.keepalive_timeout;
    case W_HEADER: return cfg.header_timeout;
    case W_BODY: return cfg.body_timeout;
    case W_HANDLER: /* the handler's own timeout (--cgi-timeout...), else a write's */
        return c->x && c->x->resp.timeout_ms ? c->x->resp.timeout_ms : cfg.write_timeout;
    case W_WRITE: return cfg.write_timeout;
    case W_LINGER: return LINGER_MS;
    }
    return cfg.write_timeout;
}

static void arm(struct conn *c, enum wait_reason w)
{
    c->wait_reason = (unsigned char)w;
    c->deadline = now_ms() + (uint64_t)wait_ms(c, w);
}

/* Enter a state; a state that waits for the peer or a producer gets its
 * deadline from the table. */
static void set_state(struct conn *c, int state)
{
    c->state = state;
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

static const struct http_limits *limits(void)
{
    static struct http_limits lim;
    lim.max_line = cfg.max_line;
    lim.max_head = cfg.max_head;
    lim.max_headers = cfg.max_headers;
    return &lim;
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
    net_addr_str(&c->peer, peer, sizeof peer, NULL);
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
    access_log_write(peer, rl, rl_len, status, bytes, ref ? ref->value.p : NULL,
                     ref ? ref->value.len : 0, ua ? ua->value.p : NULL, ua ? ua->value.len : 0);
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
    x->is_head = x->req.m == HTTP_M_HEAD;
    x->keep_alive = 0;
    x->linger = 1;
    c->state = S_RESPOND;
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

static int start_spool(struct conn *c)
{
    struct exchange *x = c->x;
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

static void begin_request(struct conn *c)
{
    struct exchange *x = c->x;
    struct http_req *r = &x->req;
    c->nreq++;
    vlog_head("< ", x->in, x->head_len);
    if (sb_self) { /* for the master's crash report and the status counters */
        const char *rl;
        size_t n = request_line_of(x, &rl);
        sb_count_request(rl, n);
    }

    x->keep_alive = r->keep_alive && c->nreq < cfg.max_keepalive_requests && !sig_stop;
    x->is_head = r->m == HTTP_M_HEAD;
    x->body_seen = 0;
    x->body_left = r->chunked ? -1 : (r->content_length > 0 ? r->content_length : 0);
    if (r->chunked)
        http_chunked_init(&x->chunk);
    resp_init(&x->resp);
    x->rq.tls = c->tp->facts ? c->tp->facts(c) : NULL;

    if (c->policy != TP_POLICY_NONE) { /* the listener answers for itself (transport.h) */
        policy_answer(c);
        return;
    }
    if (r->content_length > cfg.max_body) {
        fail(c, 413);
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
    x->rq.peer = &c->peer;
    x->rq.body_fd = -1;
    x->rq.body_len = 0;
    x->rq.crash_fd = c->fd;
    x->rq.crash_ok = x->out_len == 0;
    int routed = router_route(&x->rq, x->path, sizeof x->path, &x->resp);
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
static int sink(struct conn *c, const char *p, size_t n)
{
    struct exchange *x = c->x;
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
    if (x->body_seen > cfg.max_body) {
        fail(c, 413);
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

/* Put the response head (and a small body) into out. */
static void respond(struct conn *c)
{
    struct exchange *x = c->x;
    struct response *rs = &x->resp;
    int http10 = x->req.version_minor == 0;
    if (sig_stop || rs->close)
        x->keep_alive = 0;
    int has_body = http_status_has_body(rs->status);
    x->chunked_out = 0;
    if (has_body && rs->length < 0) {
        if (http10)
            x->keep_alive = 0; /* close-delimited */
        else
            x->chunked_out = 1;
    }
    if (!has_body || x->is_head)
        resp_release(rs); /* HEAD: same head, no body */
    /* Room for the head, and for a small memory body (cached files), which
     * is always copied now and never left pending; else flush first. */
    size_t need = 4096 + RESP_HDR_CAP;
    if (rs->body == BODY_MEM && rs->length <= SMALL_FILE)
        need += (size_t)rs->length;
    if (x->out_len && x->out_len + need > OUT_CAP) {
        after_flush(c, S_RESPOND);
        return;
    }
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
    vlog_head("> ", x->out + x->out_len, hl);
    x->out_len += hl;
    x->log_status = rs->status; /* logged once sent (log_done) */
    x->body_sent = 0;
    x->body_from = x->body_to = x->out_len;

    x->pending = 0;
    if (rs->body == BODY_MEM && (size_t)rs->length <= OUT_CAP - x->out_len) {
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

/* Send out[], then the pending body. Returns CONN_WRITE/CONN_READ to wait,
 * -1 on a dead connection, WRITE_ALL_SENT when everything is sent. */
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
            if (x->pending && rs->body == BODY_MEM) { /* large memory body: one writev */
                iov[1].iov_base = (void *)(uintptr_t)rs->mem;
                iov[1].iov_len = (size_t)rs->length;
                n = 2;
            }
            ssize_t w = c->tp->writev(c, iov, n);
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
            return WRITE_ALL_SENT;
        if (rs->body == BODY_MEM) {
            struct iovec one = {(void *)(uintptr_t)rs->mem, (size_t)rs->length};
            ssize_t w = c->tp->writev(c, &one, 1);
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
            ssize_t w = c->tp->sendfile(c, rs->fd, &rs->off, chunk);
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
        return WRITE_ALL_SENT;
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
            if (!c->readable) { /* nothing to read: give the buffers back and wait */
                if (x) {
                    x_put(x);
                    c->x = NULL;
                }
                return CONN_READ;
            }
            if (!x) {
                x = c->x = x_get();
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
            int r = http_parse_request(&x->req, x->in, x->in_len, limits());
            if (r > 0) {
                x->head_len = (size_t)r;
                begin_request(c);
                break;
            }
            if (r == HTTP_BAD) {
                if (log_verbose_on)
                    vlog("bad request: %d %s", x->req.status, x->req.error ? x->req.error : "");
                x->head_len = 0;
                fail(c, x->req.status ? x->req.status : 400);
                break;
            }
            if (x->out_len) { /* answers to earlier pipelined requests go out first */
                set_state(c, S_WRITE);
                break;
            }
            if (x->in_len >= x->in_cap) {
                fail(c, 431);
                break;
            }
            ssize_t n = fill(c);
            if (n == FH_AGAIN)
                return CONN_READ;
            if (n <= 0)
                return CONN_DONE; /* the client went away mid-head */
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
            arm(c, W_BODY); /* --body-timeout bounds a stall, not the upload */
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
            if (x->closing) {
                if (!x->linger)
                    return CONN_DONE;
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
