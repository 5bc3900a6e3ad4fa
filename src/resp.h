/* resp.h - what a handler answers: struct response and its helpers.
 *
 * Ownership of the body is explicit, because a response may outlive the
 * handler call that made it (the event model defers a response while the
 * client's socket is full, or while earlier answers are still being sent):
 *   BODY_MEM    mem points at bytes that live as long as the response:
 *                 - static storage (error pages, an app's static body): borrowed;
 *                 - mem_free set: malloc'd, owned by the response, freed by
 *                   resp_release();
 *                 - mem_pin set: a reference on a shared block (the open-file
 *                   cache's small files); the response holds one reference,
 *                   resp_release() drops it, and the block lives while any
 *                   reference does, whatever the cache does meanwhile.
 *               Never a pointer into memory that someone else may free.
 *   BODY_FILE   fd is owned by the response, closed by resp_release().
 *   BODY_STREAM stream.close() is called once by resp_release(). */
#ifndef FH_RESP_H
#define FH_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum body_kind { BODY_NONE, BODY_MEM, BODY_FILE, BODY_STREAM };

#define FH_AGAIN (-2)

/* Size relations the core relies on; each user _Static_asserts against these. */
#define RESP_HDR_CAP 2048        /* extra header lines of one response */
#define RESP_FIXED_HEAD_MAX 4096 /* status line, Server, Date, Content-Type/-Length, Connection */
#define FH_SMALL_BODY 8192       /* bodies up to this size are copied next to their head */

/* A reference-counted block of bytes that responses can pin (nginx pins its
 * open-file cache entries the same way). One process only: no atomics. */
struct blob {
    unsigned refs;
    size_t len;
    char data[];
};
/* A new block of len bytes with one reference (the caller's), or NULL. */
struct blob *blob_new(size_t len);
/* Take another reference; returns b. */
struct blob *blob_ref(struct blob *b);
/* Drop a reference; the last one frees the block. NULL is a no-op. */
void blob_unref(struct blob *b);

/* A pull source for bodies produced over time (CGI output, app streams). */
struct body_stream {
    /* Up to cap bytes into buf: >0 bytes, 0 end of body, -1 failure (the
     * connection is aborted), FH_AGAIN nothing yet: wait until *wait_fd is
     * readable. */
    ssize_t (*read)(void *ctx, char *buf, size_t cap, int *wait_fd);
    void (*close)(void *ctx); /* always called once, also on abort */
    void *ctx;
};

/* A response whose head is not known yet (CGI: the script's header lines come
 * first). The core calls prepare() before it writes the head:
 *   0        resp is complete (status, headers, body source): go on;
 *   FH_AGAIN wait until *wait_fd is readable, then call again (until the
 *            deadline of --cgi-timeout: then close() is called and the client
 *            gets 504);
 *   -1       failed: close() is called; the client gets resp->status if the
 *            handler set an error status (>= 500), else 502. */
struct response;
struct deferred {
    int (*prepare)(void *ctx, struct response *resp, int *wait_fd);
    void *ctx; /* the same ctx as the body stream's, usually */
    int fin_ok; /* the client's FIN (a half-close) does not stop the handler,
                   only a reset does: apps on the pool (app_pool.c) answer
                   clients that shut their sending side, as inline apps do */
};

struct response {
    int status;
    const char *content_type;  /* static string, or NULL for none */
    int64_t length;            /* body length; -1: unknown (chunked or close-delimited) */
    enum body_kind body;
    const char *mem;           /* BODY_MEM: see the ownership rules above */
    void *mem_free;            /* BODY_MEM: owned, free()d by resp_release */
    struct blob *mem_pin;      /* BODY_MEM: a pinned reference, dropped by resp_release */
    int fd;                    /* BODY_FILE: owned by the response, closed by the core */
    off_t off;                 /* BODY_FILE: first byte to send */
    struct body_stream stream; /* BODY_STREAM */
    char hdr[RESP_HDR_CAP];    /* extra header lines, "Name: value\r\n" each */
    size_t hdr_len;
    int close;                 /* close the connection after this response */
    struct deferred deferred;  /* prepare != NULL: the head comes later */
    int timeout_ms;            /* while deferred / streaming: the handler's own
                                  timeout (e.g. --cgi-timeout); 0: write timeout */
};

/* Response helpers (http_resp.c). */
void resp_init(struct response *r);
void resp_release(struct response *r); /* close fd / free or unpin memory / close stream */
/* Append "Name: value\r\n"; silently refuses what does not fit. */
void resp_header(struct response *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A small HTML error page for status (static storage: borrowed). */
void resp_error(struct response *r, int status);
/* A borrowed body: body must outlive the response (static storage). */
void resp_mem(struct response *r, int status, const char *type, const char *body, size_t len);
/* A pinned body: takes a reference on b for the bytes [off, off+len). */
void resp_pinned(struct response *r, int status, const char *type, struct blob *b, size_t off,
                 size_t len);

#endif
