/* handler.h - what a handler (static, CGI, app) sees and returns.
 *
 * A handler never touches a socket: it gets a request view and fills a
 * response with a status, header lines and a body *source*; conn.c sends it. */
#ifndef FH_HANDLER_H
#define FH_HANDLER_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "environ.h" /* struct tls_facts */
#include "http_parse.h"
#include "net.h"
#include "resp.h"

struct request {
    const struct http_req *h;   /* the parsed head (views into the connection's buffer) */
    const char *path;           /* percent-decoded, dot segments removed, NUL-terminated */
    size_t path_len;
    const struct mount *mount;  /* the mount that matched (router.c) */
    const union net_addr *peer;
    union net_addr local;       /* the server's address of this connection */
    const struct tls_facts *tls; /* HTTPS: the connection's TLS facts; NULL on plain HTTP */
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

typedef void (*handler_fn)(const struct request *req, struct response *resp);

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
struct reaping;
extern struct reaping *h_cgi_to_reap; /* the scripts not reaped yet (h_cgi.c) */
int h_cgi_reap_list(int block);
/* (inline: with nothing to reap, no call into h_cgi.c's code, a page a fork
 * child would fault in, issue 19) */
static inline int h_cgi_reap(int block)
{
    return h_cgi_to_reap ? h_cgi_reap_list(block) : -1;
}

#endif
