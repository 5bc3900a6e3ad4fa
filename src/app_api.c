/* app_api.c - the table given to C apps (struct fh_api): the request side
 * (fields, environ, body), the response side (status, header fields, one
 * body source), logging; and the per-request object behind an fh_req.
 *
 * The per-request path does no syscall and, once warm, no allocation: the
 * fh_req objects come from a free list, environ strings are built only when
 * asked for, into an arena inside that object. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app_int.h"
#include "app_pool.h"
#include "environ.h"
#include "http_parse.h"
#include "log.h"
#include "owned_hdr.h"

/* ---- the per-request object ---- */

static struct areq *free_reqs;
static unsigned free_nreqs;

struct areq *areq_get(void)
{
    struct areq *q = free_reqs;
    if (q) {
        free_reqs = q->next_free;
        free_nreqs--;
    } else {
        q = malloc(sizeof *q);
        if (!q)
            return NULL;
        q->efd = -1; /* the pool's (app_pool.c): kept while q is reused */
        q->cp = NULL;
    }
    q->pstate = P_NONE;
    q->open = 1;
    q->status = 200;
    q->failed = 0;
    q->body = B_NONE;
    q->buf = NULL;
    q->len = q->cap = 0;
    q->fd = -1;
    q->declared = -1;
    q->body_off = 0;
    q->remote = NULL;
    q->sname = NULL;
    q->env_have = 0;
    q->it_k = 0;
    q->arena_used = 0;
    q->spill = NULL;
    return q;
}

void areq_put(struct areq *q)
{
    free(q->buf);
    q->buf = NULL;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    while (q->spill) {
        struct spill *s = q->spill;
        q->spill = s->next;
        free(s);
    }
    app_pool_put(q);
    if (free_nreqs >= 64) { /* keep enough for reuse, not a high-water mark forever */
        app_pool_free(q);
        free(q);
        return;
    }
    q->next_free = free_reqs;
    free_reqs = q;
    free_nreqs++;
}

void areq_pool_free(void)
{
    while (free_reqs) {
        struct areq *q = free_reqs;
        free_reqs = q->next_free;
        app_pool_free(q);
        free(q);
    }
    free_nreqs = 0;
}

static struct areq *AQ(fh_req *r)
{
    return (struct areq *)r; /* pub is the first member */
}

/* Per-request memory for environ strings: freed (reused) with the request. */
static char *arena_alloc(struct areq *q, size_t n)
{
    if (n <= ARENA - q->arena_used) {
        char *p = q->arena + q->arena_used;
        q->arena_used += n;
        return p;
    }
    struct spill *s = malloc(sizeof *s + n);
    if (!s)
        return NULL;
    s->next = q->spill;
    q->spill = s;
    return s->data;
}

static char *arena_strndup(struct areq *q, const char *p, size_t n)
{
    char *d = arena_alloc(q, n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

/* The request line as received, for logs (the head ends in CRLF, so it is
 * bounded; the cap only guards against a head we did not parse). */
size_t app_request_line(const struct request *rq, const char **p)
{
    *p = "";
    if (!rq || !rq->h || !rq->h->method.p)
        return 0;
    const char *s = rq->h->method.p;
    size_t n = 0;
    while (n < 200 && s[n] != '\r' && s[n] != '\n')
        n++;
    *p = s;
    return n;
}

/* ---- the table given to apps: request side ---- */

static struct fh_str api_header(fh_req *r, const char *name)
{
    const struct http_header *h = name ? http_req_header(AQ(r)->rq->h, name) : NULL;
    struct fh_str v = {NULL, 0};
    return h ? app_view(h->value) : v;
}

static int api_header_at(fh_req *r, size_t i, struct fh_str *name, struct fh_str *value)
{
    const struct http_req *h = AQ(r)->rq->h;
    if (i >= h->nheaders)
        return -1;
    if (name)
        *name = app_view(h->headers[i].name);
    if (value)
        *value = app_view(h->headers[i].value);
    return 0;
}

static int addr_port(const union net_addr *a)
{
    if (a->sa.sa_family == AF_INET)
        return ntohs(a->in4.sin_port);
    if (a->sa.sa_family == AF_INET6)
        return ntohs(a->in6.sin6_port);
    return 0;
}

static const char *api_remote_addr(fh_req *r, int *port)
{
    struct areq *q = AQ(r);
    if (!q->remote) {
        char buf[INET6_ADDRSTRLEN];
        buf[0] = 0;
        if (q->rq->peer)
            net_addr_str(q->rq->peer, buf, sizeof buf, &q->remote_port);
        q->remote = arena_strndup(q, buf, strlen(buf));
    }
    if (port)
        *port = q->remote_port;
    return q->remote ? q->remote : "";
}

static const char *api_server_name(fh_req *r, int *port)
{
    struct areq *q = AQ(r);
    const struct request *rq = q->rq;
    if (port)
        *port = addr_port(&rq->local);
    if (q->sname)
        return q->sname;
    q->sname = "";
    struct http_str host = env_server_name(rq->h);
    if (host.len) {
        const char *s = arena_strndup(q, host.p, host.len);
        if (s)
            q->sname = s;
        return q->sname;
    }
    char buf[INET6_ADDRSTRLEN];
    buf[0] = 0;
    net_addr_str(&rq->local, buf, sizeof buf, NULL);
    const char *s = arena_strndup(q, buf, strlen(buf));
    if (s)
        q->sname = s;
    return q->sname;
}

/* HTTP_*: the value of field i's variable (environ.c: every field of that
 * name, joined), built into the arena. */
static const char *env_http(struct areq *q, int i)
{
    const struct http_req *h = q->rq->h;
    size_t n = env_var_value(h, i, NULL, 0);
    char *d = arena_alloc(q, n + 1);
    if (!d)
        return NULL;
    env_var_value(h, i, d, n);
    d[n] = 0;
    return d;
}

static const char *env_num(struct areq *q, long long v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    return arena_strndup(q, buf, (size_t)n);
}

static const char *str_or_empty(struct areq *q, struct fh_str s)
{
    return s.ptr ? arena_strndup(q, s.ptr, s.len) : "";
}

/* The fixed environ names, in the order env_at lists them. */
enum {
    E_METHOD, E_SCRIPT, E_PATH_INFO, E_QUERY, E_URI, E_CTYPE, E_CLEN, E_SNAME, E_SPORT,
    E_PROTO, E_SOFTWARE, E_GATEWAY, E_RADDR, E_RPORT, E_COUNT
};
_Static_assert(E_COUNT <= 16, "areq.envv is too small");
static const char *const env_names[E_COUNT] = {
    "REQUEST_METHOD", "SCRIPT_NAME",    "PATH_INFO",       "QUERY_STRING",
    "REQUEST_URI",    "CONTENT_TYPE",   "CONTENT_LENGTH",  "SERVER_NAME",
    "SERVER_PORT",    "SERVER_PROTOCOL", "SERVER_SOFTWARE", "GATEWAY_INTERFACE",
    "REMOTE_ADDR",    "REMOTE_PORT",
};

static const char *env_compute(struct areq *q, int e)
{
    fh_req *r = &q->pub;
    switch (e) {
    case E_METHOD: return str_or_empty(q, r->method);
    case E_SCRIPT: return str_or_empty(q, r->script_name);
    case E_PATH_INFO: return str_or_empty(q, r->path_info);
    case E_QUERY: return str_or_empty(q, r->query);
    case E_URI: return str_or_empty(q, r->target);
    case E_CTYPE: {
        struct http_str v = env_content_type(q->rq->h);
        return v.p ? arena_strndup(q, v.p, v.len) : NULL;
    }
    case E_CLEN: /* a body was sent (even an empty chunked one) */
        return env_has_body(q->rq->h) ? env_num(q, (long long)r->content_length) : NULL;
    case E_SNAME: return api_server_name(r, NULL);
    case E_SPORT: return env_num(q, addr_port(&q->rq->local));
    case E_PROTO: return str_or_empty(q, r->protocol);
    case E_SOFTWARE: return FH_SERVER;
    case E_GATEWAY: return "forkhttpd-app/1";
    case E_RADDR: return api_remote_addr(r, NULL);
    case E_RPORT: {
        int port;
        api_remote_addr(r, &port);
        return env_num(q, port);
    }
    default: return NULL;
    }
}

/* Fixed variables are built once per request (env_at lists them again and
 * again); HTTP_* ones are built per call. */
static const char *env_fixed(struct areq *q, int e)
{
    if (!(q->env_have & (1u << e))) {
        q->envv[e] = env_compute(q, e);
        q->env_have |= 1u << e;
    }
    return q->envv[e];
}

static const char *api_env(fh_req *r, const char *name)
{
    struct areq *q = AQ(r);
    if (!name)
        return NULL;
    if (!strncmp(name, "HTTP_", 5)) {
        int f = env_find_var(q->rq->h, name);
        return f >= 0 ? env_http(q, f) : NULL;
    }
    for (int i = 0; q->rq->tls && i < ENV_TLS_VARS; i++) { /* HTTPS=on, SSL_* (environ.h) */
        const char *n, *v = env_tls_var(q->rq->tls, i, &n);
        if (!strcmp(name, n))
            return v;
    }
    for (int e = 0; e < E_COUNT; e++)
        if (!strcmp(name, env_names[e]))
            return env_fixed(q, e);
    return NULL;
}

static int api_env_at(fh_req *r, size_t i, const char **name, const char **value)
{
    struct areq *q = AQ(r);
    const struct http_req *h = q->rq->h;
    size_t k = 0;
    for (int e = 0; e < E_COUNT; e++) {
        const char *v = env_fixed(q, e);
        if (!v)
            continue;
        if (k++ == i) {
            *name = env_names[e];
            *value = v;
            return 0;
        }
    }
    /* then one HTTP_* per exported field name (environ.c); a listing in
     * order goes on from where the last call stopped */
    size_t pos = 0;
    if (q->it_k && q->it_k <= i) {
        k = q->it_k;
        pos = q->it_pos;
    }
    int f;
    while ((f = env_next_field(h, &pos)) >= 0) {
        if (k++ != i)
            continue;
        size_t cap = 5 + h->headers[f].name.len + 1;
        char *var = arena_alloc(q, cap);
        if (!var || !env_var_name(h, f, var, cap))
            return -1;
        *name = var;
        *value = env_http(q, f);
        q->it_k = k;
        q->it_pos = pos;
        return *value ? 0 : -1;
    }
    return -1;
}

static ssize_t api_read(fh_req *r, void *buf, size_t cap)
{
    struct areq *q = AQ(r);
    int fd = q->rq->body_fd;
    if (fd < 0 || q->body_off >= q->rq->body_len)
        return 0;
    if ((int64_t)cap > q->rq->body_len - q->body_off)
        cap = (size_t)(q->rq->body_len - q->body_off);
    for (;;) {
        /* pread: our own position, whatever else moves the fd's offset */
        ssize_t n = pread(fd, buf, cap, (off_t)q->body_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            q->body_off += n;
        return n;
    }
}

/* ---- the table: response side ---- */

int app_refuse(struct areq *q, const char *fmt, ...)
{
    if (!q->failed) { /* the first reason is the one worth logging */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(q->why, sizeof q->why, fmt, ap);
        va_end(ap);
    }
    q->failed = 1;
    return -1;
}

/* Response calls after the handler returned cannot change what was sent. */
static int closed(struct areq *q, const char *what)
{
    const char *rl;
    size_t n = app_request_line(q->rq, &rl);
    warn("app %s: %s after the handler returned (ignored) \"%.*s\"", q->app->name, what,
         (int)n, rl);
    return -1;
}

static int api_status(fh_req *r, int code)
{
    struct areq *q = AQ(r);
    if (!q->open)
        return closed(q, "fh_status");
    if (code < 200 || code > 599)
        return app_refuse(q, "invalid status %d", code);
    q->status = code;
    return 0;
}

static int api_header_add(fh_req *r, const char *name, const char *value)
{
    struct areq *q = AQ(r);
    if (!q->open)
        return closed(q, "fh_header");
    if (!name || !value)
        return app_refuse(q, "fh_header with a NULL name or value");
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0)
        return app_refuse(q, "empty header name");
    for (size_t i = 0; i < nl; i++)
        if (!http_is_tchar((unsigned char)name[i]))
            return app_refuse(q, "invalid character 0x%02x in header name",
                              (unsigned char)name[i]);
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return app_refuse(q, "invalid character 0x%02x in the value of %.64s", c, name);
    }
    struct http_str n = {name, nl};
    /* Content-Type, by far the commonest, is neither reserved nor special */
    int ctype = nl == 12 && http_str_ieq(n, "Content-Type");
    /* The fields the server writes itself (owned_hdr.h; the same table as
     * CGI's): dropped, and logged once per field name, app and process. */
    int owned = ctype ? -1 : owned_hdr_find(name, nl);
    if (owned >= 0) {
        /* (pool threads: several calls of an app may get here at once) */
        if (!(__atomic_fetch_or(&q->app->dropped_logged, 1u << owned, __ATOMIC_RELAXED) &
              (1u << owned))) {
            warn("app %s: dropped its %s field: the server writes it (logged once per process)",
                 q->app->name, owned_hdr_name(owned));
        }
        return 0;
    }
    if (!ctype && http_str_ieq(n, "Content-Length")) {
        /* a promise about the body, checked when the handler returns; the
         * server writes the field itself (once) */
        int64_t v = 0;
        if (http_parse_content_length(value, vl, &v) < 0)
            return app_refuse(q, "invalid Content-Length '%.32s'", value);
        if (q->declared >= 0 && q->declared != v)
            return app_refuse(q, "two different Content-Length values");
        q->declared = v;
        return 0;
    }
    struct response *rs = q->resp;
    if (nl + vl + 4 > sizeof rs->hdr - rs->hdr_len)
        return app_refuse(q, "header fields over %zu bytes", sizeof rs->hdr);
    char *p = rs->hdr + rs->hdr_len;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    rs->hdr_len += nl + vl + 4;
    return 0;
}

static int body_free(struct areq *q, int kind)
{
    if (!q->open)
        return closed(q, "a body call");
    if (q->body != B_NONE && !(q->body == B_BUF && kind == B_BUF))
        return app_refuse(q, "a second body source");
    return 0;
}

static int reserve(struct areq *q, size_t more)
{
    if (more <= q->cap - q->len)
        return 0;
    size_t want = q->cap ? q->cap : 4096;
    while (want - q->len < more) {
        if (want > SIZE_MAX / 2)
            return app_refuse(q, "body too large for memory");
        want *= 2;
    }
    char *b = realloc(q->buf, want);
    if (!b)
        return app_refuse(q, "out of memory for a %zu-byte body", want);
    q->buf = b;
    q->cap = want;
    return 0;
}

static int api_write(fh_req *r, const void *data, size_t len)
{
    struct areq *q = AQ(r);
    if (body_free(q, B_BUF) < 0)
        return -1;
    q->body = B_BUF;
    if (len == 0)
        return 0;
    if (!data)
        return app_refuse(q, "fh_write of NULL");
    if (reserve(q, len) < 0)
        return -1;
    memcpy(q->buf + q->len, data, len);
    q->len += len;
    return 0;
}

__attribute__((format(printf, 2, 0))) static int api_vprintf(fh_req *r, const char *fmt,
                                                              va_list ap)
{
    struct areq *q = AQ(r);
    if (body_free(q, B_BUF) < 0)
        return -1;
    q->body = B_BUF;
    if (reserve(q, 256) < 0)
        return -1;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(q->buf + q->len, q->cap - q->len, fmt, ap);
    if (n >= 0 && (size_t)n >= q->cap - q->len) {
        if (reserve(q, (size_t)n + 1) == 0)
            vsnprintf(q->buf + q->len, q->cap - q->len, fmt, ap2);
        else
            n = -1;
    }
    va_end(ap2);
    if (n < 0)
        return app_refuse(q, "fh_printf failed");
    q->len += (size_t)n;
    return 0;
}

static int api_body_static(fh_req *r, const void *data, size_t len)
{
    struct areq *q = AQ(r);
    if (body_free(q, B_STATIC) < 0)
        return -1;
    if (!data && len)
        return app_refuse(q, "fh_body_static of NULL");
    q->body = B_STATIC;
    q->smem = data;
    q->slen = len;
    return 0;
}

static int api_sendfile(fh_req *r, int fd, int64_t offset, int64_t len)
{
    struct areq *q = AQ(r);
    if (body_free(q, B_FILE) < 0) {
        if (fd >= 0)
            close(fd); /* documented: ours from the call on, also on failure */
        return -1;
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return app_refuse(q, "fh_sendfile needs an open regular file");
    }
    if (offset < 0 || offset > st.st_size || len < -1 || (len >= 0 && len > st.st_size - offset)) {
        close(fd);
        return app_refuse(q, "fh_sendfile range %lld+%lld outside a %lld-byte file",
                      (long long)offset, (long long)len, (long long)st.st_size);
    }
    q->body = B_FILE;
    q->fd = fd;
    q->foff = offset;
    q->flen = len >= 0 ? len : st.st_size - offset;
    return 0;
}

static int api_stream(fh_req *r, fh_stream_read *rd, fh_stream_close *cl, void *ctx, int64_t len)
{
    struct areq *q = AQ(r);
    int rc = body_free(q, B_STREAM);
    if (rc == 0 && (!rd || len < -1))
        rc = app_refuse(q, "fh_stream needs a read callback and a length >= -1");
    if (rc < 0) {
        if (cl)
            cl(ctx); /* documented: close always runs once, also on failure */
        return -1;
    }
    q->body = B_STREAM;
    q->sread = rd;
    q->sclose = cl;
    q->sctx = ctx;
    q->stream_len = len;
    q->stream_sent = 0;
    return 0;
}

__attribute__((format(printf, 2, 0))) static void api_vlog(fh_req *r, const char *fmt,
                                                            va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (r) {
        struct areq *q = AQ(r);
        const char *rl;
        size_t n = app_request_line(q->rq, &rl);
        warn("app %s: %s (\"%.*s\")", q->app->name, msg, (int)n, rl);
    } else {
        struct app *a = app_crash_running(); /* set while init/fini run */
        if (a)
            a->logged = 1;
        /* from inside its init: the reason it cannot start (a WSGI module
         * that does not import), and the server exits 2 or answers 500: an
         * error; from its fini: a warning */
        if (a && !a->ready)
            log_error("app %s: %s", a->name, msg);
        else
            warn("app %s: %s", a ? a->name : "?", msg);
    }
}

/* r NULL: the app whose init/fini runs now (as for vlog). */
static const char *api_mount_arg(fh_req *r, const char **prefix)
{
    struct app *a = r ? AQ(r)->app : app_crash_running();
    if (prefix)
        *prefix = r ? AQ(r)->rq->mount->prefix : a ? a->prefix : NULL;
    return a ? a->arg : NULL;
}

const struct fh_api app_api = {
    .version = FH_APP_API_VERSION,
    .size = sizeof(struct fh_api),
    .header = api_header,
    .header_at = api_header_at,
    .env = api_env,
    .env_at = api_env_at,
    .remote_addr = api_remote_addr,
    .server_name = api_server_name,
    .read = api_read,
    .status = api_status,
    .header_add = api_header_add,
    .write = api_write,
    .vprintf = api_vprintf,
    .body_static = api_body_static,
    .sendfile = api_sendfile,
    .stream = api_stream,
    .vlog = api_vlog,
    .mount_arg = api_mount_arg,
};
