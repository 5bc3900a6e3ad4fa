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
    const union net_addr *local;
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

/* The handlers. */
void h_static(const struct request *req, struct response *resp);

#endif
