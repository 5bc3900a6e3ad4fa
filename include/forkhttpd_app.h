/* forkhttpd_app.h - the C app interface of forkhttpd (API version 1.1).
 *
 * This is the only header an app includes. An app is a shared object that
 * exports one handler function; the server loads it with
 *
 *     forkhttpd --app [PREFIX=]FILE.so:SYMBOL
 *
 * (the tutorial's WSGI "module:callable" becomes "FILE.so:SYMBOL"). A
 * complete app:
 *
 *     #include <forkhttpd_app.h>
 *
 *     fh_handler app; // the prototype: the compiler checks the signature
 *
 *     int app(fh_req *r)
 *     {
 *         static const char hello[] = "Hello, World!\n";
 *         fh_status(r, 200);
 *         fh_header(r, "Content-Type", "text/plain");
 *         return fh_body_static(r, hello, sizeof hello - 1);
 *     }
 *
 *     cc -std=c11 -O2 -fPIC -shared -Iinclude -o hello.so hello.c
 *     forkhttpd --app /hello=./hello.so:app
 *
 * ---- How the server finds things in FILE.so (at startup, before listening)
 *
 *   SYMBOL                     the handler, an fh_handler (required).
 *   forkhttpd_app_api_version  the API version the app was compiled against.
 *                              This header defines it (a weak, exported
 *                              constant), so including the header is enough.
 *                              A missing or different version refuses to start.
 *   SYMBOL_init, SYMBOL_fini   optional per-process hooks (fh_init, fh_fini),
 *                              e.g. app_init / app_fini for SYMBOL "app".
 *   SYMBOL_flags               optional const unsigned: FH_APP_THREAD_SAFE...
 *                              (API 1.1; see "Threads" below).
 *
 * A mount may also give the app an argument string (fh_mount_arg): --wsgi
 * MODULE:CALLABLE is the server's own wsgi.so app with "MODULE:CALLABLE" as
 * its argument.
 *
 * Any failure there (no file, no symbol, wrong version) prints one line and
 * the server exits with status 2. The app needs no symbol of the server: all
 * the server's functions reach it through a table (fh_req.api), which the
 * inline fh_* wrappers below use. Build apps as plain -fPIC -shared objects;
 * `nm -D --undefined-only app.so` shows only libc symbols (if any).
 *
 * ---- Life cycle
 *
 * The .so is loaded once, in the first process. Each process that serves
 * requests (iterative: the server; fork: each connection's child; prefork and
 * event: each worker) calls SYMBOL_init once after it is forked, before its
 * first request, and SYMBOL_fini when it stops normally. With --preload (and
 * for --wsgi in every model but event) SYMBOL_init runs instead once
 * in the first process before it listens: every process forked from it
 * inherits the state and does not run init again, and fini runs in each
 * serving process that stops normally and in the first process at exit. A
 * failing preloaded init stops the server (exit 2): log why with
 * fh_api_log, one line. Then, for every
 * request routed to the app, the handler runs once, after the whole request
 * body has been received: the app never sees the socket and never waits for
 * the network.
 *
 * Threads. In the event model a worker serves many connections with one
 * loop. An app that declares FH_APP_THREAD_SAFE (SYMBOL_flags, below) runs
 * on one of the worker's --threads pool threads: the loop keeps the socket
 * and sends what the handler set once it returns, so a slow handler stalls
 * only itself; --app-timeout bounds it (504), --app-queue bounds the calls
 * waiting for a thread (503). Any other app runs to completion inside the
 * loop, like bjoern: a slow handler stalls every other connection of that
 * worker. init and fini always run in the worker's main thread. The other
 * models serve one connection per process and call the handler there.
 *
 * ---- Routing
 *
 * Mounts are --app PREFIX=..., --cgi PREFIX=DIR and the static --root "/".
 * The longest prefix that matches on a path-segment boundary wins ("/app"
 * matches "/app" and "/app/x", not "/apple"); on equal prefixes the mount
 * given first on the command line wins; the static root matches everything
 * else. The matched prefix is SCRIPT_NAME, the rest of the path PATH_INFO.
 *
 * ---- Errors and crashes
 *
 * A handler that returns nonzero, or that gave an invalid status or header,
 * makes the server answer "500 Internal Server Error" for that request and
 * log one line; the connection and the server go on.
 * A handler that crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) kills the
 * process that runs it; before dying, that process answers 500 with
 * "Connection: close" (if no byte of the response was sent yet) and logs the
 * app and the request line. What that takes down depends on the model:
 *   iterative  the whole server dies (by that signal): one process serves all.
 *   fork       only the child serving that connection dies.
 *   prefork    that worker dies; the master logs it and starts a new one.
 *   event      that worker dies with every connection it was serving; the
 *              master logs it and starts a new one.
 */
#ifndef FORKHTTPD_APP_H
#define FORKHTTPD_APP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface. It changes whenever a compiled app would
 * no longer work with the server (struct layouts, function meanings). */
#define FH_APP_API_VERSION 1
/* Additions that keep every compiled app working (1.1: SYMBOL_flags). */
#define FH_APP_API_MINOR 1

/* SYMBOL_flags (optional, since 1.1): what the app promises, read once at
 * load time. Define it next to the handler, e.g. for SYMBOL "app":
 *
 *     const unsigned app_flags = FH_APP_THREAD_SAFE;
 *
 * FH_APP_THREAD_SAFE  the handler may run in several threads at once (its
 *                     state is read-only or locked; it uses no static
 *                     buffers). With --threads N (event model; the default is
 *                     32) such an app runs on a pool thread of its worker, so
 *                     a handler that waits (a database, a sleep, a slow
 *                     service) stalls no other connection. Without the flag
 *                     the handler runs inside the event loop, one call at a
 *                     time per worker, as in API 1.0.
 * FH_APP_INLINE       the handler never waits (microseconds of CPU): run it
 *                     inside the event loop even with --threads, which saves
 *                     the hand-off to a thread (the fastest for such apps).
 * Stream callbacks (fh_stream) always run inside the event loop: they must
 * not block (return FH_AGAIN with a wait_fd instead). */
#define FH_APP_THREAD_SAFE 1u
#define FH_APP_INLINE 2u

/* A view of bytes owned by the server: NOT NUL-terminated. ptr is NULL when
 * the item is absent (e.g. no query string), else len may still be 0.
 * Print with printf("%.*s", (int)s.len, s.ptr). */
struct fh_str {
    const char *ptr;
    size_t len;
};

struct fh_api;

/* One request and its response. The server owns it; the app gets a pointer
 * that is valid until the handler returns, or, if the handler gave a stream
 * body (fh_stream), until the stream's close callback has run. Every view
 * (fh_str) and string the server hands out for this request lives as long.
 * The fields are read-only; never copy or create an fh_req (the server's
 * private per-request state follows it in memory). */
typedef struct fh_req {
    const struct fh_api *api; /* the server's functions (used by the fh_* wrappers) */
    void *state;              /* what SYMBOL_init stored in *state; NULL without init */
    struct fh_str method;     /* "GET", "POST", ... */
    struct fh_str target;     /* the raw request-target: "/app/x%20y?a=1" */
    struct fh_str path;       /* percent-decoded, dot segments removed: "/app/x y" */
    struct fh_str script_name;/* the mount prefix: "/app" ("" for a mount at "/") */
    struct fh_str path_info;  /* path after script_name: "/x y" (may be "") */
    struct fh_str query;      /* after '?', still encoded: "a=1"; ptr NULL: no '?' */
    struct fh_str protocol;   /* "HTTP/1.1" or "HTTP/1.0" */
    int64_t content_length;   /* bytes of the request body (de-chunked); 0: none */
} fh_req;

/* These are function types: declare your functions with them, e.g.
 *     fh_handler app;   fh_init app_init;   fh_fini app_fini;
 * which gives each exported function its prototype (-Wmissing-prototypes)
 * and lets the compiler check its signature against the server's.
 *
 * The handler (SYMBOL). Return 0 when the response is set, nonzero for an
 * error (the client gets 500, the server logs it). With no fh_status call the
 * status is 200; with no body call the body is empty. A HEAD request is
 * handled like GET: the server sends the head and drops the body. */
typedef int fh_handler(fh_req *r);

/* SYMBOL_init (optional): once per serving process, before its first
 * request. *state starts NULL; what you store there is fh_req.state in every
 * request of this process. Return 0, or nonzero if the app cannot work: then
 * every request to it in this process gets 500 (and fini is not called). */
typedef int fh_init(const struct fh_api *api, void **state);
/* SYMBOL_fini (optional): once when the process stops normally (not after a
 * crash or SIGKILL), with the state init stored; free it here. */
typedef void fh_fini(const struct fh_api *api, void *state);

/* A pull source for a body produced over time (fh_stream). The server calls
 * read whenever it can send more, after the response head:
 *   > 0        that many bytes were put into buf (at most cap);
 *   0          the body is complete;
 *   -1         failure: the connection is closed (the head is already out);
 *   FH_AGAIN   nothing now: the server waits until *wait_fd is readable
 *              (a pipe or socket the app owns), then calls read again.
 * close is called exactly once, when the body is done or the connection is
 * aborted (also for HEAD, where read may never be called). When the length
 * given to fh_stream is known, the server stops calling read once that many
 * bytes came, and a read that ends (0) short of it aborts the connection. Both run inside
 * the serving loop like the handler, with the same crash protection; they
 * may use r's request fields and fh_read until close returns. */
#define FH_AGAIN (-2)
typedef ssize_t fh_stream_read(void *ctx, char *buf, size_t cap, int *wait_fd);
typedef void fh_stream_close(void *ctx);

/* The server's functions. Apps call them through the fh_* wrappers below;
 * the table lives as long as the server process. `size` is sizeof the
 * server's table: later minor additions are appended at the end. */
struct fh_api {
    unsigned version; /* FH_APP_API_VERSION of the server */
    size_t size;

    /* request */
    struct fh_str (*header)(fh_req *r, const char *name);
    int (*header_at)(fh_req *r, size_t i, struct fh_str *name, struct fh_str *value);
    const char *(*env)(fh_req *r, const char *name);
    int (*env_at)(fh_req *r, size_t i, const char **name, const char **value);
    const char *(*remote_addr)(fh_req *r, int *port);
    const char *(*server_name)(fh_req *r, int *port);
    ssize_t (*read)(fh_req *r, void *buf, size_t cap);

    /* response */
    int (*status)(fh_req *r, int code);
    int (*header_add)(fh_req *r, const char *name, const char *value);
    int (*write)(fh_req *r, const void *data, size_t len);
    int (*vprintf)(fh_req *r, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
    int (*body_static)(fh_req *r, const void *data, size_t len);
    int (*sendfile)(fh_req *r, int fd, int64_t offset, int64_t len);
    int (*stream)(fh_req *r, fh_stream_read *read, fh_stream_close *close, void *ctx,
                  int64_t len);

    /* helpers */
    void (*vlog)(fh_req *r, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

    /* Added later in version 1 (present when size covers them; the wrappers
     * check). New functions are only ever appended here. */
    const char *(*mount_arg)(fh_req *r, const char **prefix);
};

/* ======================= the request =======================
 * Everything here can be called from the handler and from its stream
 * callbacks. */

/* The value of the first header field called name (case-insensitive), as
 * received with surrounding blanks removed; .ptr NULL if there is none. */
static inline struct fh_str fh_req_header(fh_req *r, const char *name)
{
    return r->api->header(r, name);
}

/* The i-th header field of the request (0-based, in the order received, name
 * with its case as sent). Returns 0, or -1 when i is past the last one:
 *     for (size_t i = 0; fh_req_header_at(r, i, &n, &v) == 0; i++) ... */
static inline int fh_req_header_at(fh_req *r, size_t i, struct fh_str *name,
                                   struct fh_str *value)
{
    return r->api->header_at(r, i, name, value);
}

/* The CGI/WSGI environ variable name as a NUL-terminated string, or NULL if
 * it is not set for this request:
 *   REQUEST_METHOD, SCRIPT_NAME (the mount prefix, "" for "/"), PATH_INFO
 *   (decoded), QUERY_STRING ("" if none), REQUEST_URI (the raw target),
 *   CONTENT_TYPE and CONTENT_LENGTH (only when the request has them; the
 *   length is that of the de-chunked body), SERVER_NAME (from Host, else the
 *   local address), SERVER_PORT (the local port), SERVER_PROTOCOL,
 *   SERVER_SOFTWARE, GATEWAY_INTERFACE ("forkhttpd-app/1"), REMOTE_ADDR,
 *   REMOTE_PORT, and HTTP_<NAME> for each header field (upper case, '-' ->
 *   '_'; repeated fields joined with ", ", Cookie with "; "). The same rules
 *   as CGI and WSGI (src/environ.h): no HTTP_PROXY, no field whose name has
 *   a character other than letters, digits and '-' (X_Foo would pose as
 *   X-Foo), none for Content-Type/-Length, Transfer-Encoding, Connection,
 *   Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade.
 * Strings are built on first use into per-request memory (no allocation for
 * requests that never ask) and stay valid as long as r. */
static inline const char *fh_env(fh_req *r, const char *name)
{
    return r->api->env(r, name);
}

/* The i-th environ variable (0-based): the set ones above in that order, then
 * one HTTP_* per distinct header field. Returns 0, or -1 past the last. */
static inline int fh_env_at(fh_req *r, size_t i, const char **name, const char **value)
{
    return r->api->env_at(r, i, name, value);
}

/* The client's address ("127.0.0.1", "::1") and port (*port, if port is not
 * NULL). Valid as long as r. */
static inline const char *fh_remote_addr(fh_req *r, int *port)
{
    return r->api->remote_addr(r, port);
}

/* The server's name for this request (the Host header without its port,
 * else the local address) and the local port of the connection. */
static inline const char *fh_server_name(fh_req *r, int *port)
{
    return r->api->server_name(r, port);
}

/* Read the next bytes of the request body (already complete and de-chunked
 * by the server, bounded by --max-body: larger bodies got 413 before the
 * handler ran). Returns bytes read (> 0), 0 at the end, -1 on an I/O error.
 * Never blocks on the network. */
static inline ssize_t fh_read(fh_req *r, void *buf, size_t cap)
{
    return r->api->read(r, buf, cap);
}

/* ======================= the response =======================
 * The WSGI start_response step (status, headers) then one body source. These
 * work only inside the handler (not in stream callbacks); each returns 0, or
 * -1 if refused - and a refused call makes the whole response a 500 even if
 * the handler then returns 0 (so an app cannot half-build a response). */

/* The status: 200..599 (1xx are not allowed: the server answers them itself).
 * 204 and 304 must have no body. Default 200. */
static inline int fh_status(fh_req *r, int code)
{
    return r->api->status(r, code);
}

/* Add a header field. name: token characters (RFC 9110), value: printable
 * characters, blanks and HTAB (no CR, LF, NUL or other controls). The
 * strings are copied. The server owns the framing and its own fields, so
 * these are dropped (return 0; logged once per name and process), as for CGI
 * and WSGI: Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, TE,
 * Trailer, Upgrade, Proxy-Authenticate, Proxy-Authorization, Date, Server
 * (src/owned_hdr.c). Content-Length is accepted only if it equals the
 * length of the body given (and for fh_stream with len -1 it sets the
 * length, which the stream must then produce exactly). All fields of a
 * response share about 2 KiB. */
static inline int fh_header(fh_req *r, const char *name, const char *value)
{
    return r->api->header_add(r, name, value);
}

/* Append bytes to the body, copied into memory the server owns and frees
 * after sending (for small and medium bodies; use fh_sendfile or fh_stream
 * for big ones). May be called many times. */
static inline int fh_write(fh_req *r, const void *data, size_t len)
{
    return r->api->write(r, data, len);
}

/* fh_write with printf formatting. */
static inline int fh_printf(fh_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int fh_printf(fh_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = r->api->vprintf(r, fmt, ap);
    va_end(ap);
    return rc;
}

/* The body is data[0..len), NOT copied: it must stay unchanged until the
 * response is sent (static storage, or memory owned by the app's state).
 * The fastest body: no allocation, no copy beyond the socket write. */
static inline int fh_body_static(fh_req *r, const void *data, size_t len)
{
    return r->api->body_static(r, data, len);
}

/* The body is len bytes of the open file fd from offset (len -1: to the end
 * of the file), sent with sendfile(2). The server owns fd from this call on
 * (it closes it, also when the call fails). */
static inline int fh_sendfile(fh_req *r, int fd, int64_t offset, int64_t len)
{
    return r->api->sendfile(r, fd, offset, len);
}

/* The body comes from read(ctx, ...) over time (see fh_stream_read); len is
 * its length if known, else -1: then the server sends it chunked (HTTP/1.1)
 * or until close (HTTP/1.0). close(ctx) is always called once,
 * also when this call fails; r stays valid until then. */
static inline int fh_stream(fh_req *r, fh_stream_read *read, fh_stream_close *close, void *ctx,
                            int64_t len)
{
    return r->api->stream(r, read, close, ctx, len);
}

/* ======================= helpers ======================= */

/* Log one line to the server's stderr, prefixed with the app's name and the
 * request line. */
static inline void fh_log(fh_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void fh_log(fh_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->api->vlog(r, fmt, ap);
    va_end(ap);
}

/* The same outside a request (in SYMBOL_init / SYMBOL_fini). */
static inline void fh_api_log(const struct fh_api *api, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void fh_api_log(const struct fh_api *api, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    api->vlog(NULL, fmt, ap);
    va_end(ap);
}

/* The argument the app's mount gives it, and (if prefix is not NULL) the
 * mount's prefix ("/" or "/x/y"). r is the request, or NULL inside
 * SYMBOL_init / SYMBOL_fini (then: the mount the init is for; an app mounted
 * at several prefixes with the same argument is one instance with one init,
 * and gets the first prefix). Returns NULL when the mount has no argument:
 * --app mounts have none; --wsgi [PREFIX=]MODULE:CALLABLE mounts the server's
 * wsgi.so with "MODULE:CALLABLE" as the first line of its argument (the
 * lines after it are docs/wsgi.md's). Each different argument is a separate
 * instance of the app (its own init and state), even in the same FILE.so.
 * Also NULL (and *prefix NULL) on a version-1 server older than this call. */
static inline const char *fh_mount_arg(const struct fh_api *api, fh_req *r, const char **prefix)
{
    if (api->size < offsetof(struct fh_api, mount_arg) + sizeof api->mount_arg) {
        if (prefix)
            *prefix = NULL;
        return NULL;
    }
    return api->mount_arg(r, prefix);
}

/* Split "a=1&b=x%20y" into pairs: each call takes the next pair off the
 * front of *form into *name and *value (views, still encoded; value.len 0 for
 * "a" or "a="). Returns 1 for a pair, 0 when *form is used up. Empty pairs
 * ("&&") are skipped. Pure code, compiled into the app. */
static inline int fh_form_next(struct fh_str *form, struct fh_str *name, struct fh_str *value)
{
    while (form->ptr && form->len > 0) {
        const char *p = form->ptr, *end = p + form->len, *amp = p;
        while (amp < end && *amp != '&')
            amp++;
        form->ptr = amp < end ? amp + 1 : end;
        form->len = (size_t)(end - form->ptr);
        if (amp == p)
            continue; /* "&&" */
        const char *eq = p;
        while (eq < amp && *eq != '=')
            eq++;
        name->ptr = p;
        name->len = (size_t)(eq - p);
        value->ptr = eq < amp ? eq + 1 : amp;
        value->len = (size_t)(amp - value->ptr);
        return 1;
    }
    return 0;
}

/* Decode %XX and '+' (space) of a form name or value into out (cap bytes,
 * NUL-terminated if cap > 0). Returns the decoded length, truncated to
 * cap-1; a malformed escape is copied as is. Pure code, compiled into the app. */
static inline size_t fh_unescape(struct fh_str in, char *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < in.len && n + 1 < cap; i++) {
        char c = in.ptr[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < in.len) {
            int v = 0, ok = 1;
            for (int k = 1; k <= 2; k++) {
                char h = in.ptr[i + (size_t)k];
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= h - '0';
                else if (h >= 'a' && h <= 'f')
                    v |= h - 'a' + 10;
                else if (h >= 'A' && h <= 'F')
                    v |= h - 'A' + 10;
                else
                    ok = 0;
            }
            if (ok) {
                c = (char)v;
                i += 2;
            }
        }
        out[n++] = c;
    }
    out[n] = 0;
    return n;
}

/* The version this app was compiled against, read by the server with dlsym
 * at load time. Weak, so an app made of several files that all include this
 * header still has one definition. The server itself defines
 * FH_APP_SERVER_SIDE and has no such symbol. */
#ifndef FH_APP_SERVER_SIDE
#ifdef __cplusplus /* a namespace-scope const needs extern to be exported */
extern __attribute__((weak, visibility("default"))) const unsigned forkhttpd_app_api_version =
    FH_APP_API_VERSION;
#else
extern const unsigned forkhttpd_app_api_version;
__attribute__((weak, visibility("default"))) const unsigned forkhttpd_app_api_version =
    FH_APP_API_VERSION;
#endif
#endif

#ifdef __cplusplus
}
#endif

#endif
