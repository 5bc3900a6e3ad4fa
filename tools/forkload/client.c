/* client.c - one client process: a non-blocking, edge-triggered epoll loop
 * over --conns connection "slots", and a streaming HTTP/1.1 response parser.
 *
 * A slot owns one connection at a time and a number of requests still to
 * issue. Requests are issued by bumping a byte counter into the prebuilt
 * request buffer, so the hot path neither allocates nor formats. Responses
 * are parsed byte-wise straight out of one large read buffer; only the values
 * of three headers (Content-Length, Transfer-Encoding, Connection) are ever
 * copied, into a small per-connection array.
 *
 * https:// puts an OpenSSL object on the connection (tls.c makes the
 * context): the handshake is driven by the same edge-triggered events
 * (state C_HANDSHAKE), then SSL_read/SSL_write replace read/send. */
#include "forkload.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define RBUF_SIZE        (256 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)  /* status line + headers (+ trailers) */
#define HVAL_MAX         96
#define MAX_EVENTS       512

enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_PARKED, C_DONE };

/* Why a slot opens another connection (only counted with keep-alive, where
 * one connection per slot is the plan). */
enum { RE_NONE, RE_CLOSED, RE_ERROR };

enum {
    PS_VERSION, PS_CODE, PS_REASON, PS_STATUS_LF,
    PS_HLINE, PS_HNAME, PS_HVAL_OWS, PS_HVAL, PS_HVAL_LF, PS_HEND_LF,
    /* everything from here on is body */
    PS_BODY_CL, PS_BODY_EOF,
    PS_CHUNK_SIZE, PS_CHUNK_EXT, PS_CHUNK_SIZE_LF,
    PS_CHUNK_DATA, PS_CHUNK_DATA_CR, PS_CHUNK_DATA_LF,
    PS_TRAILER, PS_TRAILER_LINE, PS_TRAILER_LF, PS_TRAILER_END_LF,
};

enum { H_NONE, H_CL, H_TE, H_CONN };

#define RF_HTTP10    0x01u
#define RF_CLOSE     0x02u /* the connection ends after this response */
#define RF_KEEPALIVE 0x04u /* "Connection: keep-alive" (matters for 1.0) */
#define RF_CHUNKED   0x08u
#define RF_TE        0x10u
#define RF_CL        0x20u

enum { P_MORE, P_DONE, P_ERR };

struct conn {
    int fd;
    uint8_t state, ps, hkind, hname_len, hval_len, chunk_digits;
    uint8_t reopen;      /* RE_*: why the next connection is opened */
    uint16_t status;
    uint32_t pos;        /* bytes into the status line */
    uint32_t hdr_bytes;  /* header bytes so far, to bound them */
    uint32_t flags;      /* RF_* of the response being parsed */
    uint32_t in_flight;  /* requests issued, response not complete */
    uint32_t head;       /* ring index of the oldest in-flight request */
    uint32_t responses;  /* completed on this connection */
    int queued;          /* waiting in the open queue */
    uint64_t body_left;  /* Content-Length or chunk bytes still to skip */
    uint64_t clen;
    uint64_t pending;    /* request bytes issued but not yet sent */
    size_t woff;         /* next byte to send, offset into cfg->reqs */
    uint64_t to_send;    /* requests of this slot not yet issued */
    uint64_t *starts;    /* ring of cfg->pipeline request start times */
    SSL *ssl;            /* https: this connection's TLS, or NULL */
    SSL_SESSION *sess;   /* --tls-resume: the slot's last session */
    int resume;          /* --tls-resume: keep the session at the close */
    int tls_dead;        /* a fatal TLS error: no close_notify */
    char hname[18];      /* long enough for "transfer-encoding" */
    char hval[HVAL_MAX];
};

struct loop {
    const struct config *cfg;
    int ep, out_fd;
    int reuse;           /* several requests per connection */
    uint32_t per_conn;   /* requests in flight per connection */
    struct conn *conns;
    uint64_t *starts;
    uint32_t *openq;     /* slots waiting for a new connection */
    size_t openq_len;
    char *rbuf;
    struct hist *h;
    uint64_t st[ST_COUNT];
    uint64_t timeout_ns, end_ns;
    long active;         /* slots with work left */
    int tls_said;        /* the first TLS failure was told on stderr */
};

volatile sig_atomic_t g_stop;

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- parser */

static int is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z') || (ch && strchr(extra, ch));
}

static int is_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

static int token_eq(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lit[i])
            return 0;
    return 1;
}

static void parser_reset(struct conn *c)
{
    c->ps = PS_VERSION;
    c->pos = 0;
    c->hdr_bytes = 0;
    c->flags = 0;
    c->status = 0;
    c->clen = 0;
    c->body_left = 0;
}

static void classify_header(struct conn *c)
{
    c->hkind = H_NONE;
    if (c->hname_len == 14 && !memcmp(c->hname, "content-length", 14))
        c->hkind = H_CL;
    else if (c->hname_len == 17 && !memcmp(c->hname, "transfer-encoding", 17))
        c->hkind = H_TE;
    else if (c->hname_len == 10 && !memcmp(c->hname, "connection", 10))
        c->hkind = H_CONN;
}

/* Interpret a complete value of an interesting header. */
static int header_value(struct conn *c)
{
    size_t n = c->hval_len;
    const char *v = c->hval;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (c->hkind == H_CL) {
        uint64_t x = 0;
        if (n == 0 || n > 18)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -1;
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if ((c->flags & RF_CL) && c->clen != x)
            return -1;
        c->flags |= RF_CL;
        c->clen = x;
        return 0;
    }
    /* Comma-separated token lists. For Transfer-Encoding only the last
     * coding matters: the body is chunked iff chunked is applied last. */
    if (c->hkind == H_TE)
        c->flags |= RF_TE;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (c->hkind == H_TE) {
            if (b > a) {
                if (token_eq(v + a, b - a, "chunked"))
                    c->flags |= RF_CHUNKED;
                else
                    c->flags &= ~RF_CHUNKED;
            }
        } else if (token_eq(v + a, b - a, "close")) {
            c->flags |= RF_CLOSE;
        } else if (token_eq(v + a, b - a, "keep-alive")) {
            c->flags |= RF_KEEPALIVE;
        }
        i = j + 1;
    }
    return 0;
}

/* The blank line after the headers: decide how the body is delimited. */
static int headers_done(const struct loop *L, struct conn *c)
{
    unsigned s = c->status;
    if (s >= 100 && s < 200 && s != 101) {
        /* Interim response (100 Continue, 103 Early Hints): skip it, the
         * final response follows on the same request. */
        parser_reset(c);
        return P_MORE;
    }
    if ((c->flags & RF_HTTP10) && !(c->flags & RF_KEEPALIVE))
        c->flags |= RF_CLOSE;
    if (s == 101)
        c->flags |= RF_CLOSE; /* we never asked to switch protocols */
    if (L->cfg->is_head || s == 204 || s == 304 || s == 101)
        return P_DONE;
    if (c->flags & RF_TE) {
        if (c->flags & RF_CHUNKED) {
            c->ps = PS_CHUNK_SIZE;
            c->body_left = 0;
            c->chunk_digits = 0;
        } else {
            c->ps = PS_BODY_EOF;
            c->flags |= RF_CLOSE;
        }
        return P_MORE;
    }
    if (c->flags & RF_CL) {
        if (c->clen == 0)
            return P_DONE;
        c->ps = PS_BODY_CL;
        c->body_left = c->clen;
        return P_MORE;
    }
    c->ps = PS_BODY_EOF; /* close-delimited */
    c->flags |= RF_CLOSE;
    return P_MORE;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (unsigned char)lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Consume up to n bytes of the response being received. Returns P_DONE with
 * *used set when a response completed, P_MORE when all n bytes were
 * consumed, P_ERR on a protocol violation. */
static int parse(const struct loop *L, struct conn *c, const char *p, size_t n,
                 size_t *used)
{
    static const char version[] = "HTTP/1.";
    size_t i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)p[i];
        switch (c->ps) {
        case PS_VERSION:
            if (c->pos < 7) {
                if (ch != (unsigned char)version[c->pos])
                    return P_ERR;
            } else if (c->pos == 7) {
                if (ch == '0')
                    c->flags |= RF_HTTP10;
                else if (ch != '1')
                    return P_ERR;
            } else {
                if (ch != ' ')
                    return P_ERR;
                c->ps = PS_CODE;
                c->pos = 0;
                c->status = 0;
                i++;
                break;
            }
            c->pos++;
            i++;
            break;
        case PS_CODE:
            if (c->pos < 3) {
                if (ch < '0' || ch > '9')
                    return P_ERR;
                c->status = (uint16_t)(c->status * 10 + (ch - '0'));
                c->pos++;
                i++;
                break;
            }
            if (c->status < 100)
                return P_ERR;
            if (ch == ' ')
                c->ps = PS_REASON;
            else if (ch == '\r')
                c->ps = PS_STATUS_LF;
            else
                return P_ERR;
            i++;
            break;
        case PS_REASON:
        case PS_HVAL:
        case PS_CHUNK_EXT:
        case PS_TRAILER_LINE: {
            /* Runs of line content up to CR. */
            const char *cr = memchr(p + i, '\r', n - i);
            size_t end = cr ? (size_t)(cr - p) : n;
            for (size_t k = i; k < end; k++) {
                if (is_ctl((unsigned char)p[k]))
                    return P_ERR;
            }
            if (c->ps == PS_HVAL && c->hkind != H_NONE) {
                size_t len = end - i;
                if (len > (size_t)(HVAL_MAX - c->hval_len)) {
                    if (c->hkind == H_CL)
                        return P_ERR;
                    len = HVAL_MAX - c->hval_len; /* token lists: truncate */
                }
                memcpy(c->hval + c->hval_len, p + i, len);
                c->hval_len = (uint8_t)(c->hval_len + len);
            }
            i = end;
            if (cr) {
                i++;
                c->ps = c->ps == PS_REASON      ? PS_STATUS_LF
                        : c->ps == PS_HVAL      ? PS_HVAL_LF
                        : c->ps == PS_CHUNK_EXT ? PS_CHUNK_SIZE_LF
                                                : PS_TRAILER_LF;
            }
            break;
        }
        case PS_STATUS_LF:
        case PS_HVAL_LF:
        case PS_TRAILER_LF:
            if (ch != '\n')
                return P_ERR;
            i++;
            if (c->ps == PS_HVAL_LF && c->hkind != H_NONE &&
                header_value(c) < 0)
                return P_ERR;
            c->ps = c->ps == PS_TRAILER_LF ? PS_TRAILER : PS_HLINE;
            break;
        case PS_HLINE:
            if (ch == '\r') {
                c->ps = PS_HEND_LF;
                i++;
                break;
            }
            if (!is_tchar(ch)) /* also rejects obs-fold continuation lines */
                return P_ERR;
            c->ps = PS_HNAME;
            c->hname_len = 0;
            break;
        case PS_HNAME:
            if (ch == ':') {
                classify_header(c);
                c->hval_len = 0;
                c->ps = PS_HVAL_OWS;
                i++;
                break;
            }
            if (!is_tchar(ch))
                return P_ERR;
            if (c->hname_len < sizeof(c->hname))
                c->hname[c->hname_len++] = (char)lower(ch);
            else
                c->hname_len = sizeof(c->hname) + 1; /* not one we want */
            i++;
            break;
        case PS_HVAL_OWS:
            if (ch == ' ' || ch == '\t')
                i++;
            else
                c->ps = PS_HVAL;
            break;
        case PS_HEND_LF: {
            if (ch != '\n')
                return P_ERR;
            i++;
            int r = headers_done(L, c);
            if (r == P_DONE) {
                *used = i;
                return P_DONE;
            }
            break;
        }
        case PS_BODY_CL:
        case PS_CHUNK_DATA: {
            size_t take = n - i;
            if (take > c->body_left)
                take = (size_t)c->body_left;
            i += take;
            c->body_left -= take;
            if (c->body_left == 0) {
                if (c->ps == PS_BODY_CL) {
                    *used = i;
                    return P_DONE;
                }
                c->ps = PS_CHUNK_DATA_CR;
            }
            break;
        }
        case PS_BODY_EOF:
            i = n; /* ends when the server closes */
            break;
        case PS_CHUNK_SIZE: {
            int hv = hexval(ch);
            if (hv >= 0) {
                if (c->body_left >> 56) /* absurd chunk size */
                    return P_ERR;
                c->body_left = c->body_left * 16 + (uint64_t)hv;
                c->chunk_digits++;
                i++;
                break;
            }
            if (!c->chunk_digits)
                return P_ERR;
            if (ch == ';')
                c->ps = PS_CHUNK_EXT;
            else if (ch == '\r')
                c->ps = PS_CHUNK_SIZE_LF;
            else
                return P_ERR;
            i++;
            break;
        }
        case PS_CHUNK_SIZE_LF:
            if (ch != '\n')
                return P_ERR;
            i++;
            c->ps = c->body_left ? PS_CHUNK_DATA : PS_TRAILER;
            c->hdr_bytes = 0; /* trailers get their own budget */
            break;
        case PS_CHUNK_DATA_CR:
            if (ch != '\r')
                return P_ERR;
            i++;
            c->ps = PS_CHUNK_DATA_LF;
            break;
        case PS_CHUNK_DATA_LF:
            if (ch != '\n')
                return P_ERR;
            i++;
            c->ps = PS_CHUNK_SIZE;
            c->chunk_digits = 0;
            c->body_left = 0;
            break;
        case PS_TRAILER:
            if (ch == '\r') {
                c->ps = PS_TRAILER_END_LF;
                i++;
                break;
            }
            if (!is_tchar(ch))
                return P_ERR;
            c->ps = PS_TRAILER_LINE;
            break;
        case PS_TRAILER_END_LF:
            if (ch != '\n')
                return P_ERR;
            *used = i + 1;
            return P_DONE;
        default:
            return P_ERR;
        }
    }
    *used = n;
    /* Bound the header section (and the chunk-size/trailer lines) so a
     * server streaming endless headers is an error, not a hang. */
    if (c->ps < PS_BODY_CL || c->ps >= PS_CHUNK_SIZE) {
        if (c->ps != PS_CHUNK_DATA && c->ps != PS_CHUNK_DATA_CR &&
            c->ps != PS_CHUNK_DATA_LF) {
            c->hdr_bytes += (uint32_t)n;
            if (c->hdr_bytes > MAX_HEADER_BYTES)
                return P_ERR;
        }
    }
    return P_MORE;
}

/* ------------------------------------------------------------- the loop */

static int err_stat(int err)
{
    switch (err) {
    case ECONNREFUSED:
    case ENETUNREACH:
    case EHOSTUNREACH:
        return ST_ERR_REFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
        return ST_ERR_RESET;
    case ETIMEDOUT:
        return ST_ERR_TIMEOUT;
    default:
        return ST_ERR_OTHER;
    }
}

static int issuing_stopped(const struct loop *L)
{
    return g_stop || (L->end_ns && now_ns() >= L->end_ns);
}

static void queue_open(struct loop *L, struct conn *c)
{
    if (c->queued)
        return;
    c->queued = 1;
    L->openq[L->openq_len++] = (uint32_t)(c - L->conns);
}

static void close_fd(struct conn *c)
{
    if (c->ssl) {
        /* Say goodbye (one close_notify, not waiting for the answer) on a
         * connection that ends well; then drop what a failure queued. */
        if (c->state == C_OPEN && !c->tls_dead) {
            SSL_shutdown(c->ssl);
            /* --tls-resume: the newest session (TLS 1.3: the last ticket
             * read; or the one just resumed, offered again). Not through
             * OpenSSL's client cache, which would use a TLS 1.3 ticket once. */
            SSL_SESSION *s = c->resume ? SSL_get1_session(c->ssl) : NULL;
            if (s && SSL_SESSION_is_resumable(s)) {
                SSL_SESSION_free(c->sess);
                c->sess = s;
            } else {
                SSL_SESSION_free(s);
            }
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    c->tls_dead = 0;
    if (c->fd >= 0)
        close(c->fd); /* also drops it from the epoll set */
    c->fd = -1;
    c->state = C_IDLE;
    c->in_flight = 0;
    c->pending = 0;
    c->woff = 0;
    c->responses = 0;
    parser_reset(c);
}

/* The slot has nothing left to do: close, or under --hold keep the socket
 * open (even if the server closed its end) until the hold time is up. */
static void slot_finished(struct loop *L, struct conn *c)
{
    if (L->cfg->hold > 0 && c->fd >= 0) {
        epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
        c->state = C_PARKED;
    } else {
        close_fd(c);
        c->state = C_DONE;
    }
    L->active--;
}

/* The connection is gone (or going): open another if work is left.
 * why (RE_*) says what ended it, for the reconnect counters. */
static void slot_continue(struct loop *L, struct conn *c, int why)
{
    if (c->to_send == 0 || issuing_stopped(L)) {
        close_fd(c);
        c->state = C_DONE;
        L->active--;
    } else {
        close_fd(c);
        c->reopen = (uint8_t)why;
        queue_open(L, c);
    }
}

/* Every request in flight on the connection fails with the same error. */
static void fail_conn(struct loop *L, struct conn *c, int stat)
{
    L->st[stat] += c->in_flight;
    L->st[ST_REQUESTS] += c->in_flight;
    c->in_flight = 0;
    slot_continue(L, c, RE_ERROR);
}

/* Requests whose answer the server will never send (it closed as it said it
 * would) go back to the slot to be sent again on a new connection. */
static void requeue_unanswered(struct loop *L, struct conn *c)
{
    c->to_send += c->in_flight;
    L->st[ST_ISSUED] -= c->in_flight; /* issued again later, counted then */
    c->in_flight = 0;
    slot_continue(L, c, RE_CLOSED);
}

static void issue(struct loop *L, struct conn *c, uint64_t now, uint32_t k)
{
    while (k-- && c->to_send > 0 && c->in_flight < L->per_conn) {
        c->starts[(c->head + c->in_flight) % L->per_conn] = now;
        c->in_flight++;
        c->to_send--;
        L->st[ST_ISSUED]++;
        c->pending += L->cfg->req_len;
    }
}

static int read_all(struct loop *L, struct conn *c, int until_eof);

/* https: the first TLS failure of this client, in one line on stderr (the
 * counters say how many there were). */
static void tls_tell(struct loop *L, struct conn *c)
{
    if (L->tls_said)
        return;
    L->tls_said = 1;
    char buf[320];
    fprintf(stderr, "forkload: TLS with %s: %s\n", L->cfg->url,
            tls_error_reason(c->ssl, buf, sizeof(buf)));
}

#define IO_AGAIN (-2)
#define IO_ERR   (-1)

/* A TLS call on c returned r <= 0 (err: errno right after it). Returns
 * IO_AGAIN (wait for the next event), 0 (the peer closed), or IO_ERR with
 * *stat the error to count. */
static int tls_status(struct loop *L, struct conn *c, int r, int err, int *stat)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        c->tls_dead = 1;
        ERR_clear_error();
        if (err == 0)
            return 0;
        *stat = err_stat(err);
        return IO_ERR;
    default:
        c->tls_dead = 1;
        tls_tell(L, c);
        ERR_clear_error();
        *stat = ST_ERR_TLS;
        return IO_ERR;
    }
}

/* Send what is pending. Returns -1 if the connection went away. */
static int flush(struct loop *L, struct conn *c)
{
    const struct config *cfg = L->cfg;
    while (c->pending > 0) {
        size_t len = cfg->reqs_len - c->woff;
        if (len > c->pending)
            len = (size_t)c->pending;
        ssize_t n;
        int stat = ST_ERR_OTHER; /* what a failed write counts as */
        if (c->ssl) {
            /* A write that must be repeated is repeated with the same start
             * and at least as many bytes (tls.c allows that). */
            if (len > (1u << 30))
                len = 1u << 30;
            errno = 0;
            int r = SSL_write(c->ssl, cfg->reqs + c->woff, (int)len);
            n = r;
            if (r <= 0) {
                int k = tls_status(L, c, r, errno, &stat);
                if (k == IO_AGAIN)
                    return 0;
                if (k == 0)
                    stat = ST_ERR_RESET;
            }
        } else {
            n = send(c->fd, cfg->reqs + c->woff, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return 0; /* EPOLLOUT will tell us */
            if (n <= 0)
                stat = err_stat(n < 0 ? errno : EPIPE);
        }
        if (n > 0) {
            c->pending -= (uint64_t)n;
            c->woff += (size_t)n;
            if (c->woff == cfg->reqs_len)
                c->woff = 0;
            continue;
        }
        /* The server may have answered and closed (Connection: close while
         * we pipelined): take its answers before calling this an error. */
        c->pending = 0;
        if (read_all(L, c, 1) < 0)
            return -1;
        fail_conn(L, c, stat);
        return -1;
    }
    return 0;
}

/* A response completed. Returns -1 if the connection is no longer open. */
static int response_done(struct loop *L, struct conn *c, uint64_t now)
{
    uint64_t lat = now - c->starts[c->head];
    hist_record(L->h, (lat + 500) / 1000);
    unsigned s = c->status;
    L->st[s >= 200 && s < 400   ? ST_OK
          : s >= 400 && s < 500 ? ST_4XX
          : s >= 500 && s < 600 ? ST_5XX
                                : ST_ERR_OTHER]++;
    L->st[ST_REQUESTS]++;
    c->in_flight--;
    c->head = (c->head + 1) % L->per_conn;
    c->responses++;
    int closing = (c->flags & RF_CLOSE) || !L->reuse;
    parser_reset(c);
    int more = c->to_send > 0 && !issuing_stopped(L);
    if (closing) {
        if (c->in_flight == 0 && !more)
            slot_finished(L, c);
        else
            requeue_unanswered(L, c);
        return -1;
    }
    if (more)
        issue(L, c, now, 1); /* sent by the caller after the whole read */
    else if (c->in_flight == 0) {
        slot_finished(L, c);
        return -1;
    }
    return 0;
}

static int feed(struct loop *L, struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        if (c->in_flight == 0) { /* bytes nobody asked for */
            fail_conn(L, c, ST_ERR_MALFORMED);
            return -1;
        }
        size_t used = 0;
        int r = parse(L, c, p, n, &used);
        if (r == P_ERR) {
            fail_conn(L, c, ST_ERR_MALFORMED);
            return -1;
        }
        if (r == P_MORE)
            return 0;
        p += used;
        n -= used;
        if (response_done(L, c, now_ns()) < 0)
            return -1;
    }
    return 0;
}

static void on_eof(struct loop *L, struct conn *c)
{
    if (c->in_flight == 0) { /* an idle keep-alive connection closed */
        slot_continue(L, c, RE_CLOSED);
        return;
    }
    if (c->ps == PS_BODY_EOF) { /* close-delimited body complete */
        c->flags |= RF_CLOSE;
        response_done(L, c, now_ns());
        return;
    }
    if (c->ps == PS_VERSION && c->pos == 0) {
        /* Nothing of the next response: a reused connection the server
         * closed (idle timeout, request limit) is retried; a fresh one that
         * closes without an answer is an error. */
        if (c->responses > 0)
            requeue_unanswered(L, c);
        else
            fail_conn(L, c, ST_ERR_RESET);
        return;
    }
    fail_conn(L, c, ST_ERR_MALFORMED); /* truncated response */
}

/* Read until EAGAIN (or EOF when until_eof). With edge-triggered epoll a
 * short read means the socket was drained, unless a FIN is also pending,
 * which the caller signals through until_eof (EPOLLRDHUP). */
static int read_all(struct loop *L, struct conn *c, int until_eof)
{
    while (c->ssl) {
        /* TLS hands out a record at a time: read until it wants more from
         * the socket (an edge-triggered event will not come again). */
        errno = 0;
        int r = SSL_read(c->ssl, L->rbuf, RBUF_SIZE);
        if (r > 0) {
            L->st[ST_BYTES] += (uint64_t)r;
            if (feed(L, c, L->rbuf, (size_t)r) < 0)
                return -1;
            continue;
        }
        int stat, k = tls_status(L, c, r, errno, &stat);
        if (k == IO_AGAIN)
            return 0;
        if (k == 0)
            on_eof(L, c);
        else
            fail_conn(L, c, stat);
        return -1;
    }
    for (;;) {
        ssize_t n = read(c->fd, L->rbuf, RBUF_SIZE);
        if (n > 0) {
            L->st[ST_BYTES] += (uint64_t)n;
            if (feed(L, c, L->rbuf, (size_t)n) < 0)
                return -1;
            if ((size_t)n < RBUF_SIZE && !until_eof)
                return 0;
            continue;
        }
        if (n == 0) {
            on_eof(L, c);
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return 0;
        fail_conn(L, c, err_stat(errno));
        return -1;
    }
}

/* https: drive the handshake; once done the connection is open. */
static void handshake(struct loop *L, struct conn *c)
{
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = C_OPEN;
        L->st[ST_CONN_OPENED]++;
        L->st[ST_TLS_HANDSHAKES]++;
        if (SSL_session_reused(c->ssl))
            L->st[ST_TLS_RESUMED]++;
        if (flush(L, c) < 0)
            return;
        /* records that came with the server's last flight (a ticket) */
        read_all(L, c, 0);
        return;
    }
    int stat, k = tls_status(L, c, r, errno, &stat);
    if (k == IO_AGAIN)
        return;
    if (k == 0)
        stat = ST_ERR_RESET; /* closed before the handshake ended */
    L->st[ST_CONN_FAILED]++;
    fail_conn(L, c, stat);
}

/* The TCP connect completed: plain, the connection is open; https starts
 * the handshake, offering the slot's last session with --tls-resume. */
static void connected(struct loop *L, struct conn *c)
{
    const struct config *cfg = L->cfg;
    if (!cfg->tls) {
        c->state = C_OPEN;
        L->st[ST_CONN_OPENED]++;
        flush(L, c);
        return;
    }
    c->ssl = SSL_new(cfg->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
        (cfg->sni && SSL_set_tlsext_host_name(c->ssl, cfg->sni) != 1) ||
        (c->sess && SSL_set_session(c->ssl, c->sess) != 1)) {
        L->st[ST_CONN_FAILED]++;
        fail_conn(L, c, ST_ERR_OTHER);
        return;
    }
    c->resume = cfg->tls_resume;
    SSL_set_connect_state(c->ssl);
    c->state = C_HANDSHAKE;
    handshake(L, c);
}

static void conn_open(struct loop *L, struct conn *c)
{
    const struct config *cfg = L->cfg;
    if (issuing_stopped(L)) { /* --duration is over: nothing more to send */
        c->state = C_DONE;
        L->active--;
        return;
    }
    if (L->reuse && c->reopen != RE_NONE)
        L->st[c->reopen == RE_CLOSED ? ST_RECONN_CLOSED : ST_RECONN_ERROR]++;
    c->reopen = RE_NONE;
    uint64_t now = now_ns();
    issue(L, c, now, L->per_conn); /* they fail with the connect, if it does */
    c->fd = socket(cfg->addr.ss_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        L->st[ST_CONN_FAILED]++;
        fail_conn(L, c, ST_ERR_OTHER);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = c,
    };
    if (epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        L->st[ST_CONN_FAILED]++;
        fail_conn(L, c, ST_ERR_OTHER);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) == 0) {
        connected(L, c);
    } else if (errno == EINPROGRESS || errno == EINTR) {
        c->state = C_CONNECTING;
    } else {
        int e = errno;
        L->st[ST_CONN_FAILED]++;
        fail_conn(L, c, err_stat(e));
    }
}

static void on_event(struct loop *L, struct conn *c, uint32_t ev)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            L->st[ST_CONN_FAILED]++;
            fail_conn(L, c, err_stat(err));
            return;
        }
        if (!(ev & (EPOLLOUT | EPOLLIN | EPOLLHUP | EPOLLERR)))
            return;
        if (L->cfg->tls) {
            connected(L, c);
            return;
        }
        c->state = C_OPEN;
        L->st[ST_CONN_OPENED]++;
        if (flush(L, c) < 0)
            return;
    } else if (c->state == C_HANDSHAKE) {
        handshake(L, c);
        return;
    } else if (c->state != C_OPEN) {
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (read_all(L, c, (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) < 0)
            return;
    }
    if (c->pending)
        flush(L, c);
}

static void check_timeouts(struct loop *L, uint64_t now)
{
    for (long i = 0; i < L->cfg->conns; i++) {
        struct conn *c = &L->conns[i];
        if ((c->state != C_CONNECTING && c->state != C_HANDSHAKE && c->state != C_OPEN) ||
            !c->in_flight)
            continue;
        if (now - c->starts[c->head] < L->timeout_ns)
            continue;
        if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
            L->st[ST_CONN_FAILED]++;
            L->st[ST_CONN_TIMEOUT]++;
        }
        fail_conn(L, c, ST_ERR_TIMEOUT);
    }
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* parent gone: nothing useful left to do */
        p += n;
        len -= (size_t)n;
    }
}

static void send_progress(struct loop *L)
{
    uint64_t errs = 0;
    for (int i = ST_ERR_FIRST; i <= ST_ERR_LAST; i++)
        errs += L->st[i];
    struct rec r[2] = {
        { REC_PROGRESS, 0, L->st[ST_REQUESTS] },
        { REC_PROGRESS, 1, errs },
    };
    write_all(L->out_fd, r, sizeof(r));
}

/* Final report: counters, the non-empty histogram buckets, END. Batches of
 * PIPE_BUF bytes so each write is atomic. */
static void send_report(struct loop *L)
{
    enum { BATCH = 4096 / sizeof(struct rec) };
    struct rec b[BATCH];
    size_t n = 0;
#define PUT(t, i, v)                                                  \
    do {                                                              \
        b[n].type = (t);                                              \
        b[n].idx = (uint32_t)(i);                                     \
        b[n].val = (v);                                               \
        if (++n == BATCH) {                                           \
            write_all(L->out_fd, b, sizeof(b));                       \
            n = 0;                                                    \
        }                                                             \
    } while (0)
    for (int i = 0; i < ST_COUNT; i++)
        PUT(REC_STAT, i, L->st[i]);
    for (uint32_t i = 0; i < HIST_LEN; i++)
        if (L->h->counts[i])
            PUT(REC_HIST, i, L->h->counts[i]);
    PUT(REC_HMIN, 0, L->h->min);
    PUT(REC_HMAX, 0, L->h->max);
    PUT(REC_END, 0, 0);
#undef PUT
    if (n)
        write_all(L->out_fd, b, n * sizeof(b[0]));
}

int client_run(const struct config *cfg, uint64_t start_ns, int out_fd)
{
    struct loop L;
    memset(&L, 0, sizeof(L));
    L.cfg = cfg;
    L.out_fd = out_fd;
    L.reuse = cfg->keepalive || cfg->hold > 0;
    L.per_conn = L.reuse ? (uint32_t)cfg->pipeline : 1;
    L.timeout_ns = (uint64_t)(cfg->timeout * 1e9);
    if (cfg->duration > 0)
        L.end_ns = start_ns + (uint64_t)(cfg->duration * 1e9);
    if (cfg->hold > 0)
        L.end_ns = start_ns + (uint64_t)(cfg->hold * 1e9);

    size_t m = (size_t)cfg->conns;
    L.h = malloc(sizeof(*L.h));
    L.conns = calloc(m, sizeof(*L.conns));
    L.starts = calloc(m * L.per_conn, sizeof(*L.starts));
    L.openq = calloc(m, sizeof(*L.openq));
    L.rbuf = malloc(RBUF_SIZE);
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = 0;
    if (!L.h || !L.conns || !L.starts || !L.openq || !L.rbuf || L.ep < 0) {
        rc = -1;
        goto out;
    }
    hist_init(L.h);
    for (size_t i = 0; i < m; i++) {
        struct conn *c = &L.conns[i];
        c->fd = -1;
        c->starts = &L.starts[i * L.per_conn];
        /* --duration: effectively unlimited, with headroom for requeues. */
        c->to_send = cfg->duration > 0 ? UINT64_MAX / 2 : (uint64_t)cfg->requests;
        parser_reset(c);
        queue_open(&L, c);
    }
    L.active = (long)m;

    /* Timeouts are checked by a periodic scan rather than per-connection
     * timers: O(conns) every tick, nothing on the per-request path. */
    uint64_t tick = L.timeout_ns / 10;
    if (tick > 100000000u)
        tick = 100000000u;
    if (tick < 1000000u)
        tick = 1000000u;
    uint64_t now = now_ns();
    uint64_t next_scan = now + tick, next_progress = start_ns + 1000000000u;
    struct epoll_event evs[MAX_EVENTS];

    /* --requests ends when every slot is done; --duration stops issuing at
     * its end and then waits (each request bounded by --timeout) for the
     * answers still in flight; --hold ends at its time, answered or not. */
    while (!g_stop) {
        now = now_ns();
        if (cfg->hold > 0 && now >= L.end_ns)
            break;
        if (L.active == 0 && !(cfg->hold > 0))
            break;
        /* Open what is queued; failures re-queue for the next round. */
        size_t nq = L.openq_len;
        for (size_t k = 0; k < nq; k++) {
            struct conn *c = &L.conns[L.openq[k]];
            c->queued = 0;
            conn_open(&L, c);
        }
        memmove(L.openq, L.openq + nq, (L.openq_len - nq) * sizeof(*L.openq));
        L.openq_len -= nq;

        uint64_t wake = next_scan < next_progress ? next_scan : next_progress;
        if (L.end_ns && L.end_ns > now && L.end_ns < wake)
            wake = L.end_ns;
        int ms = 0;
        if (!L.openq_len && wake > now)
            ms = (int)((wake - now + 999999) / 1000000);
        int n = epoll_wait(L.ep, evs, MAX_EVENTS, ms);
        if (n < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++)
            on_event(&L, evs[k].data.ptr, evs[k].events);
        now = now_ns();
        if (now >= next_scan) {
            check_timeouts(&L, now);
            next_scan = now + tick;
        }
        if (now >= next_progress) {
            send_progress(&L);
            next_progress += 1000000000u;
        }
    }
    L.st[ST_END_NS] = now_ns();

out:
    /* What the run ended on: requests still in flight failed (the server
     * did not answer in time: the end of --hold), unless Ctrl-C cut them
     * off; connects still in progress never completed. */
    if (rc == 0)
        for (size_t i = 0; i < m; i++) {
            struct conn *c = &L.conns[i];
            if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
                L.st[ST_CONN_PENDING]++;
            if (c->in_flight) {
                if (g_stop) {
                    L.st[ST_CANCELLED] += c->in_flight;
                } else {
                    L.st[ST_ERR_UNANSWERED] += c->in_flight;
                    L.st[ST_REQUESTS] += c->in_flight;
                }
            }
            SSL_free(c->ssl); /* no close_notify: the run is over */
            SSL_SESSION_free(c->sess);
            if (c->fd >= 0)
                close(c->fd);
        }
    /* Every issued request ended exactly once. */
    if (rc == 0 && L.st[ST_ISSUED] != L.st[ST_REQUESTS] + L.st[ST_CANCELLED]) {
        fprintf(stderr, "forkload: internal error: %llu requests issued, %llu ended, "
                "%llu cancelled\n", (unsigned long long)L.st[ST_ISSUED],
                (unsigned long long)L.st[ST_REQUESTS], (unsigned long long)L.st[ST_CANCELLED]);
    }
    if (L.ep >= 0)
        close(L.ep);
    if (rc == 0)
        send_report(&L);
    free(L.h);
    free(L.conns);
    free(L.starts);
    free(L.openq);
    free(L.rbuf);
    return rc;
}
