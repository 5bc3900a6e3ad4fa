/* forkload.h - shared between the parent (main.c) and the client processes
 * (client.c): the run configuration, the counters, and the pipe records the
 * clients report through. */
#ifndef FORKLOAD_H
#define FORKLOAD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hist.h"

struct ssl_st;     /* OpenSSL's SSL and SSL_CTX (tls.c, client.c) */
struct ssl_ctx_st;

#define FORKLOAD_VERSION "1.0"

/* Per-client counters; the parent sums them. Every request that is issued
 * ends in exactly one of three ways:
 *   answered  - a complete 2xx-5xx response: OK, 4XX or 5XX
 *   failed    - one ERR_* counter (transport errors, garbage, and requests
 *               still unanswered when the run ended)
 *   cancelled - still in flight when Ctrl-C stopped the run
 * REQUESTS counts answered + failed. A request the server closed the
 * connection on without answering (after saying it would) is sent again and
 * still counts once. */
enum stat_id {
    ST_REQUESTS,
    ST_OK,            /* 2xx and 3xx */
    ST_4XX,
    ST_5XX,
    ST_ERR_REFUSED,   /* connect refused / unreachable */
    ST_ERR_RESET,     /* RST, EPIPE, or closed before any response byte */
    ST_ERR_TIMEOUT,   /* connect or response took longer than --timeout */
    ST_ERR_MALFORMED, /* response violated HTTP/1.1 or was truncated */
    ST_ERR_OTHER,     /* anything else, including 1xx/6xx+ final statuses */
    ST_ERR_TLS,       /* https: a failed handshake (certificate not trusted,
                         no common protocol) or a TLS error afterwards */
    ST_ERR_UNANSWERED,/* issued, no answer when the run ended (--hold) */
    ST_CANCELLED,     /* in flight when Ctrl-C stopped the run */
    ST_ISSUED,        /* requests issued (a resend is not a new request) */
    ST_CONN_OPENED,
    ST_CONN_FAILED,   /* connects that failed, timeouts included */
    ST_CONN_TIMEOUT,  /* ...of which timed out */
    ST_CONN_PENDING,  /* connects still in progress when the run ended */
    ST_RECONN_CLOSED, /* keep-alive: new connection, the server closed the last */
    ST_RECONN_ERROR,  /* keep-alive: new connection, the last one failed */
    ST_BYTES,         /* bytes received, headers included */
    ST_END_NS,        /* CLOCK_MONOTONIC time the client stopped */
    ST_TLS_HANDSHAKES,/* https: handshakes completed */
    ST_TLS_RESUMED,   /* ...of which resumed a session (--tls-resume) */
    ST_COUNT
};
#define ST_ERR_FIRST ST_ERR_REFUSED
#define ST_ERR_LAST  ST_ERR_UNANSWERED

struct config {
    const char *url;
    char *host_header;             /* "host[:port]" for the Host header */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    long clients, conns, requests, pipeline;
    double duration, timeout, hold; /* seconds; 0 = not set */
    int keepalive, json, is_head;
    char *req;                     /* one request, built once */
    size_t req_len;
    char *reqs;                    /* `pipeline` copies back to back, so a
                                      burst of requests is one send() */
    size_t reqs_len;
    /* https:// (tls.c) */
    int tls, tls_resume, insecure;
    const char *cacert;            /* --cacert FILE, or NULL: the system's */
    char *sni;                     /* server name sent, NULL for an address */
    struct ssl_ctx_st *ssl_ctx;    /* made once by the parent, inherited */
};

/* Clients talk to the parent in fixed 16-byte records, written in batches of
 * at most PIPE_BUF bytes so each batch arrives whole. */
struct rec {
    uint32_t type;
    uint32_t idx;
    uint64_t val;
};
enum rec_type {
    REC_PROGRESS = 1, /* idx 0: requests so far, 1: errors so far */
    REC_STAT,         /* idx: enum stat_id */
    REC_HIST,         /* idx: bucket, val: count (non-zero buckets only) */
    REC_HMIN,
    REC_HMAX,
    REC_END,          /* the report is complete */
};

/* Set by SIGINT/SIGTERM in both the parent and the clients. */
extern volatile sig_atomic_t g_stop;

uint64_t now_ns(void);
/* Run one client process's load to completion and report it on out_fd.
 * start_ns is the common start time (for --duration and --hold). */
int client_run(const struct config *cfg, uint64_t start_ns, int out_fd);

/* tls.c: the client SSL_CTX for cfg (trust, host check, session cache);
 * on failure one line on stderr and exit 2. */
void tls_setup(struct config *cfg, const char *host, int host_is_ip);
/* The reason of the last TLS failure on ssl, for one line on stderr. */
const char *tls_error_reason(struct ssl_st *ssl, char *buf, size_t len);

#endif
