/* conn.h - THE connection state machine, shared by every concurrency model.
 *
 * A model only decides who runs a connection. It calls conn_step(), which
 * does all the work it can without blocking (every socket is non-blocking)
 * and then says what it waits for: CONN_READ or CONN_WRITE on c->wait_fd,
 * until c->deadline (CLOCK_MONOTONIC ms); or CONN_DONE. When the deadline
 * passes first, the model calls conn_timeout() and steps again.
 *
 *   IDLE -> HEAD -> BODY -> RESPOND -> WRITE -> (HEAD | IDLE | LINGER) -> DONE
 *
 * Memory: an idle keep-alive connection holds only struct conn (~100 bytes);
 * the buffers (struct exchange) come from a per-process free list when bytes
 * arrive and go back to it when the connection is idle again. */
#ifndef FH_CONN_H
#define FH_CONN_H

#include <stdint.h>

#include "clock.h" /* now_ms: every model keeps deadlines */
#include "net.h"
#include "transport.h"

enum { CONN_DONE = 0, CONN_READ = 1, CONN_WRITE = 2 };

struct exchange;

struct conn {
    const struct transport *tp; /* every socket call goes through it (transport.h) */
    void *tp_ctx;          /* the transport's own state (TLS session...), or NULL */
    /* (the small fields together: 10,000 idle connections are 10,000 of these) */
    unsigned char tp_want; /* CONN_READ/CONN_WRITE the transport waits for (transport.h), or 0 */
    unsigned char policy;  /* TP_POLICY_* of the listener (transport.h) */
    unsigned char proxy;   /* a PROXY protocol header is still to come (proxy.h) */
    unsigned char wait_reason; /* which timeout the deadline is (conn.c's table) */
    /* May a read find bytes? The model sets it when the socket is reported
     * readable; conn_step clears it when a read drains the socket (a short
     * read or EAGAIN), so an idle keep-alive connection costs no recv that
     * can only say EAGAIN (nginx's rev->ready). */
    unsigned char readable;
    /* The peer's FIN has been reported (EPOLLRDHUP): a short read then does
     * not mean "drained", the EOF is still to be read (nginx's pending_eof). */
    unsigned char rdhup;
    /* the write conn.c is making ends the connection if the transport takes
     * all of it (TLS then sends its close_notify with it) */
    unsigned char tp_last;
    int fd;
    int wait_fd;           /* what conn_step waits on: fd, or a CGI/app pipe */
    int state;
    unsigned nreq;         /* requests begun on this connection */
    uint64_t deadline;     /* ms, CLOCK_MONOTONIC */
    union net_addr peer;
    union net_addr local;  /* the server's end, asked once (for CGI and apps) */
    /* --min-rate (conn.c): a head or body read since rate_t0 (ms) has
     * brought rate_bytes; the state's own timeout is hard_deadline */
    uint64_t rate_t0, rate_bytes, hard_deadline;
    struct exchange *x;    /* buffers, NULL while idle */
    void *model;           /* the model's own per-connection data */
};

void conn_init(struct conn *c, int fd, const union net_addr *peer);
/* Serve as far as possible without blocking. Returns CONN_DONE (the model
 * must call conn_close), CONN_READ or CONN_WRITE. */
int conn_step(struct conn *c);
/* The deadline passed: answer 408 or give up, per state. Step again after. */
void conn_timeout(struct conn *c);
/* Is the connection between requests (safe to close on a graceful stop)? */
int conn_is_idle(const struct conn *c);
/* Graceful stop: an idle keep-alive connection gets a short last chance
 * (its next request is answered with "Connection: close" instead of racing
 * a reset), then ends. */
void conn_stop_soon(struct conn *c);
/* Set by a model whose processes are all taken (prefork at --max-workers
 * with none idle): new waits for a head or between requests get shorter
 * timeouts, and --min-rate its short grace (conn.c). NULL: never busy. */
extern int (*conn_busy)(void);
/* Re-read conn_busy: a connection reading a head, or idle, may get an
 * earlier deadline now (never a later one). For the blocking models' wait. */
void conn_recheck(struct conn *c);
/* Was c reclaimed-worthy: idle between requests after at least one? (the
 * event model closes the longest-idle of these to make room at --max-conns) */
int conn_is_keepalive_idle(const struct conn *c);
/* Release the buffers and close the socket. */
void conn_close(struct conn *c);
/* Free the cached buffers of this process (before exit, so LSan sees no leak). */
void conn_pool_free(void);
/* Make one exchange's buffers now, for a process forked later to take
 * without calling malloc (the fork model: model_fork.c). */
void conn_pool_reserve(void);

#endif
