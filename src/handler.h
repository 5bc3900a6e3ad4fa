/* handler.h - what a handler (static, CGI, app) sees and returns.
 *
 * A handler never touches a socket: it gets a request view and fills a
 * response with a status, header lines and a body *source*; conn.c sends it. */
#ifndef FH_HANDLER_H
#define FH_HANDLER_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "http_parse.h"
#include "net.h"

struct request {
    const struct http_req *h;   /* the parsed head (views into the connection's buffer) */
    const char *path;           /* percent-decoded, dot segments removed, NUL-terminated */
    size_t path_len;
    const struct mount *mount;  /* the mount that matched (router.c) */
    const union net_addr *peer;
    union net_addr local;       /* the server's address of this connection */
    /* The request body, de-chunked and complete, for mounts that take one
     * (CGI, apps): a file open for reading at offset 0 (an unlinked temporary
     * file, so a large body is never held in memory), or -1 when there is no
     * body. Owned by the core: a handler may read it, dup it, or give it to a
     * child process, but never closes it. */
    int body_fd;
    int64_t body_len;
    /* The client socket, ONLY for a crash handler's last-resort 500 (h_app.c).
     * Handlers never read or write it. */
    int crash_fd;
    /* Has any byte of an earlier response on this connection not been sent?
     * (a crash answer must not interleave with it) */
    int crash_ok;
};

enum body_kind { BODY_NONE, BODY_MEM, BODY_FILE, BODY_STREAM };

#define FH_AGAIN (-2)

/* A pull source for bodies produced over time (CGI output, app streams). */
struct body_stream {
    /* Up to cap bytes into buf: >0 bytes, 0 end of body, -1 failure (the
     * connection is aborted), FH_AGAIN nothing yet: wait until *wait_fd is
     * readable. */
    ssize_t (*read)(void *ctx, char *buf, size_t cap, int *wait_fd);
    void (*close)(void *ctx); /* always called once, also on abort */
    void *ctx;
};

#define RESP_HDR_CAP 2048

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
};

struct response {
    int status;
    const char *content_type;  /* static string, or NULL for none */
    int64_t length;            /* body length; -1: unknown (chunked or close-delimited) */
    enum body_kind body;
    const char *mem;           /* BODY_MEM */
    void *mem_free;            /* BODY_MEM: free()d by the core when sent, if set */
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

typedef void (*handler_fn)(const struct request *req, struct response *resp);

/* Response helpers (http_resp.c). */
void resp_init(struct response *r);
void resp_release(struct response *r); /* close fd / free memory / close stream */
/* Append "Name: value\r\n"; silently refuses what does not fit. */
void resp_header(struct response *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A small HTML error page for status. */
void resp_error(struct response *r, int status);
void resp_mem(struct response *r, int status, const char *type, const char *body, size_t len);

/* The handlers. A handler runs once per request, after the body (if its
 * mount takes one) has been received; it must not block for long: in the
 * event model it runs inside a worker's loop. */
void h_static(const struct request *req, struct response *resp);
void h_static_cache_free(void); /* close the open-file cache (before exit) */
void h_cgi(const struct request *req, struct response *resp);
void h_app(const struct request *req, struct response *resp);
void h_status(const struct request *req, struct response *resp);

/* Process life cycle of the gateways (h_app.c, h_cgi.c):
 * h_app_load: at startup, before listening: dlopen every --app and check it;
 *   on failure prints one line and returns -1 (the server exits with 2).
 * h_worker_start / h_worker_stop: in each process that serves requests,
 *   after fork (iterative: the server itself; fork: each child; prefork and
 *   event: each worker) - apps' init/fini run here. */
int h_app_load(void);
void h_app_unload(void);
void h_worker_start(void);
void h_worker_stop(void);

/* CGI scripts whose response is over but which are not reaped yet (h_cgi.c:
 * a worker never waits for one). h_cgi_reap(0) reaps what has exited and
 * kills the groups whose grace ran out, without blocking; it returns the ms
 * until it wants to be called again, or -1 when nothing is left. The models
 * call it periodically (the event sweep; serve.c's poll loop).
 * h_cgi_reap(1) waits until all are reaped (at most the grace, 100 ms, plus
 * the kill): after each connection in the blocking models, at a worker's exit. */
int h_cgi_reap(int block);

#endif
