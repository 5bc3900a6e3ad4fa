/* h_app.c - C apps loaded as --app [PREFIX=]FILE.so:SYMBOL.
 *
 * The public side is include/forkhttpd_app.h (read it first); this file is
 * the server's half of it:
 *   load     h_app_load(): dlopen each app before listening, find SYMBOL, the
 *            API version, SYMBOL_init/SYMBOL_fini; one line and -1 on failure.
 *   process  h_worker_start()/h_worker_stop(): the crash handlers and the
 *            apps' init/fini, in each process that serves requests.
 *   request  h_app(): wrap the core's request in an fh_req, run the handler,
 *            turn what it set into the core's struct response (memory, file
 *            or stream body), or a 500 if it failed or gave something invalid.
 *   crash    while app code runs, a fatal signal answers 500 on the client
 *            socket, logs the app and the request line, and re-raises.
 *
 * The per-request path does no syscall and, once warm, no allocation: the
 * fh_req objects come from a free list, environ strings are built only when
 * asked for, into an arena inside that object. */
#define FH_APP_SERVER_SIDE /* the server has no forkhttpd_app_api_version symbol */
#include "forkhttpd_app.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "environ.h"
#include "handler.h"
#include "http_parse.h"
#include "log.h"
#include "owned_hdr.h"

#define VERSION_SYMBOL "forkhttpd_app_api_version"

/* One loaded app (shared by the mounts that name the same FILE.so:SYMBOL). */
struct app {
    void *dl;
    fh_handler *fn;
    fh_init *init;
    fh_fini *fini;
    void *state;
    int ready;  /* init ran (or there is none) in this process */
    int broken; /* init failed in this process: its requests get 500 */
    char *file, *symbol;
    const char *arg;    /* the mount's argument (fh_mount_arg), or NULL */
    const char *prefix; /* the first mount's prefix */
    enum app_start start;
    int logged;         /* init/fini logged something (fh_api_log) */
    unsigned dropped_logged; /* bit i: a drop of owned_hdr_name(i) was logged */
    char *name; /* "FILE.so:SYMBOL" or the mount's label, for logs */
};

static struct app *apps[FH_MAX_MOUNTS];
static int napps;

/* ---- the per-request object ---- */

#define ARENA 4096

struct spill { /* arena overflow: rare (huge heads, many env lookups) */
    struct spill *next;
    char data[];
};

enum { B_NONE, B_STATIC, B_BUF, B_FILE, B_STREAM };

struct areq {
    fh_req pub; /* first: the app's pointer is ours */
    struct areq *next_free;
    struct app *app;
    const struct request *rq;
    struct response *resp;
    int open;    /* inside the handler: the response may still change */
    int status;
    int failed;  /* a refused call: answer 500 */
    char why[160];
    int body;    /* B_* */
    const char *smem;
    size_t slen;
    char *buf;   /* fh_write/fh_printf; handed to the core (mem_free) */
    size_t len, cap;
    int fd;      /* fh_sendfile, owned until handed to the core */
    int64_t foff, flen;
    fh_stream_read *sread;
    fh_stream_close *sclose;
    void *sctx;
    int64_t stream_len, stream_sent;
    int64_t declared; /* the app's Content-Length, -1 none */
    int64_t body_off; /* fh_read position in the spooled request body */
    const char *remote; /* built on demand */
    int remote_port;
    const char *sname;
    unsigned env_have; /* bit e: envv[e] is built */
    const char *envv[16];
    size_t it_k, it_pos; /* fh_env_at's place after the HTTP_* it gave last */
    size_t arena_used;
    struct spill *spill;
    char arena[ARENA];
};

static struct areq *free_reqs;
static unsigned free_nreqs;

static struct areq *areq_get(void)
{
    struct areq *q = free_reqs;
    if (q) {
        free_reqs = q->next_free;
        free_nreqs--;
    } else {
        q = malloc(sizeof *q);
        if (!q)
            return NULL;
    }
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

static void areq_put(struct areq *q)
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
    if (free_nreqs >= 64) { /* keep enough for reuse, not a high-water mark forever */
        free(q);
        return;
    }
    q->next_free = free_reqs;
    free_reqs = q;
    free_nreqs++;
}

static void areq_pool_free(void)
{
    while (free_reqs) {
        struct areq *q = free_reqs;
        free_reqs = q->next_free;
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
static size_t request_line(const struct request *rq, const char **p)
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

/* ---- crash protection ----
 * Installed once per serving process (no syscall per request); while no app
 * code runs (crash_app NULL) the handler gets out of the way: it puts the
 * previous action back (SIG_DFL, or ASan's) and lets the signal happen again. */

static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NCRASH ((int)(sizeof crash_sigs / sizeof crash_sigs[0]))
static struct sigaction crash_old[NCRASH];
static int crash_installed;
static struct app *volatile crash_app;               /* app code running now */
static const struct request *volatile crash_req;      /* ...for this request */
static volatile sig_atomic_t crash_can_answer;       /* nothing of its response sent */
static const char *volatile crash_where;             /* "", " in SYMBOL_init", ... */
static char crash_stack[64 * 1024]; /* a stack overflow needs another stack */

static void crash_enter(struct app *a, const struct request *rq, int can_answer,
                        const char *where)
{
    crash_req = rq;
    crash_can_answer = can_answer;
    crash_where = where;
    crash_app = a;
}

static void crash_leave(void)
{
    crash_app = NULL;
}

static size_t put(char *buf, size_t n, size_t cap, const char *s, size_t len)
{
    while (len-- && n < cap)
        buf[n++] = *s++;
    return n;
}

static size_t puts_(char *buf, size_t n, size_t cap, const char *s)
{
    return put(buf, n, cap, s, strlen(s));
}

static size_t putu(char *buf, size_t n, size_t cap, unsigned v)
{
    char tmp[12];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k && n < cap)
        buf[n++] = tmp[--k];
    return n;
}

static const char *sig_name(int s)
{
    switch (s) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "?";
    }
}

/* Async-signal-safe only: send, shutdown, write, getpid, sigaction, raise. */
static void on_crash(int signo, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int idx = 0;
    while (idx < NCRASH - 1 && crash_sigs[idx] != signo)
        idx++;
    struct app *a = crash_app;
    if (!a) {
        /* not ours: the previous action handles it. A fault (si_code > 0)
         * happens again when we return; a sent signal must be sent again. */
        sigaction(signo, &crash_old[idx], NULL);
        if (si->si_code <= 0)
            raise(signo);
        return;
    }
    crash_app = NULL; /* a fault in here falls through to the default */
    const struct request *rq = crash_req;
    if (crash_can_answer && rq && rq->crash_ok && rq->crash_fd >= 0) {
        static const char canned[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 22\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "Internal Server Error\n";
        ssize_t w = send(rq->crash_fd, canned, sizeof canned - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        shutdown(rq->crash_fd, SHUT_WR); /* the FIN goes out right behind it */
    }
    char line[512];
    size_t n = 0, cap = sizeof line - 1;
    n = puts_(line, n, cap, "forkhttpd[");
    n = putu(line, n, cap, (unsigned)getpid());
    n = puts_(line, n, cap, "]: error: app ");
    n = puts_(line, n, cap, a->name);
    n = puts_(line, n, cap, " crashed with signal ");
    n = putu(line, n, cap, (unsigned)signo);
    n = puts_(line, n, cap, " (");
    n = puts_(line, n, cap, sig_name(signo));
    n = puts_(line, n, cap, ")");
    n = puts_(line, n, cap, crash_where);
    if (rq) {
        const char *rl;
        size_t rll = request_line(rq, &rl);
        n = puts_(line, n, cap, " serving \"");
        n = put(line, n, cap, rl, rll);
        n = puts_(line, n, cap, "\"");
    }
    n = puts_(line, n, cap, "; the process dies");
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
    /* die by the signal itself, so a parent or the master sees what it was */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(signo, &dfl, NULL);
    raise(signo); /* pending until we return (the signal is blocked in here) */
}

static void crash_install(void)
{
    if (crash_installed)
        return;
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_DISABLE)) {
        ss.ss_sp = crash_stack; /* keep one already set (e.g. by ASan) */
        ss.ss_size = sizeof crash_stack;
        ss.ss_flags = 0;
        sigaltstack(&ss, NULL);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NCRASH; i++)
        sigaction(crash_sigs[i], &sa, &crash_old[i]);
    crash_installed = 1;
}

static void crash_uninstall(void)
{
    if (!crash_installed)
        return;
    for (int i = 0; i < NCRASH; i++)
        sigaction(crash_sigs[i], &crash_old[i], NULL);
    crash_installed = 0;
}

/* ---- the table given to apps: request side ---- */

static struct fh_str view(struct http_str s)
{
    struct fh_str v = {s.p, s.len};
    return v;
}

static struct fh_str api_header(fh_req *r, const char *name)
{
    const struct http_header *h = name ? http_req_header(AQ(r)->rq->h, name) : NULL;
    struct fh_str v = {NULL, 0};
    return h ? view(h->value) : v;
}

static int api_header_at(fh_req *r, size_t i, struct fh_str *name, struct fh_str *value)
{
    const struct http_req *h = AQ(r)->rq->h;
    if (i >= h->nheaders)
        return -1;
    if (name)
        *name = view(h->headers[i].name);
    if (value)
        *value = view(h->headers[i].value);
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

__attribute__((format(printf, 2, 3))) static int refuse(struct areq *q, const char *fmt, ...)
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
    size_t n = request_line(q->rq, &rl);
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
        return refuse(q, "invalid status %d", code);
    q->status = code;
    return 0;
}

static int api_header_add(fh_req *r, const char *name, const char *value)
{
    struct areq *q = AQ(r);
    if (!q->open)
        return closed(q, "fh_header");
    if (!name || !value)
        return refuse(q, "fh_header with a NULL name or value");
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0)
        return refuse(q, "empty header name");
    for (size_t i = 0; i < nl; i++)
        if (!http_is_tchar((unsigned char)name[i]))
            return refuse(q, "invalid character 0x%02x in header name", (unsigned char)name[i]);
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return refuse(q, "invalid character 0x%02x in the value of %.64s", c, name);
    }
    struct http_str n = {name, nl};
    /* Content-Type, by far the commonest, is neither reserved nor special */
    int ctype = nl == 12 && http_str_ieq(n, "Content-Type");
    /* The fields the server writes itself (owned_hdr.h; the same table as
     * CGI's): dropped, and logged once per field name, app and process. */
    int owned = ctype ? -1 : owned_hdr_find(name, nl);
    if (owned >= 0) {
        if (!(q->app->dropped_logged & (1u << owned))) {
            q->app->dropped_logged |= 1u << owned;
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
            return refuse(q, "invalid Content-Length '%.32s'", value);
        if (q->declared >= 0 && q->declared != v)
            return refuse(q, "two different Content-Length values");
        q->declared = v;
        return 0;
    }
    struct response *rs = q->resp;
    if (nl + vl + 4 > sizeof rs->hdr - rs->hdr_len)
        return refuse(q, "header fields over %zu bytes", sizeof rs->hdr);
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
        return refuse(q, "a second body source");
    return 0;
}

static int reserve(struct areq *q, size_t more)
{
    if (more <= q->cap - q->len)
        return 0;
    size_t want = q->cap ? q->cap : 4096;
    while (want - q->len < more) {
        if (want > SIZE_MAX / 2)
            return refuse(q, "body too large for memory");
        want *= 2;
    }
    char *b = realloc(q->buf, want);
    if (!b)
        return refuse(q, "out of memory for a %zu-byte body", want);
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
        return refuse(q, "fh_write of NULL");
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
        return refuse(q, "fh_printf failed");
    q->len += (size_t)n;
    return 0;
}

static int api_body_static(fh_req *r, const void *data, size_t len)
{
    struct areq *q = AQ(r);
    if (body_free(q, B_STATIC) < 0)
        return -1;
    if (!data && len)
        return refuse(q, "fh_body_static of NULL");
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
        return refuse(q, "fh_sendfile needs an open regular file");
    }
    if (offset < 0 || offset > st.st_size || len < -1 || (len >= 0 && len > st.st_size - offset)) {
        close(fd);
        return refuse(q, "fh_sendfile range %lld+%lld outside a %lld-byte file",
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
        rc = refuse(q, "fh_stream needs a read callback and a length >= -1");
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
        size_t n = request_line(q->rq, &rl);
        warn("app %s: %s (\"%.*s\")", q->app->name, msg, (int)n, rl);
    } else {
        struct app *a = crash_app; /* set while init/fini run */
        if (a)
            a->logged = 1;
        warn("app %s: %s", a ? a->name : "?", msg);
    }
}

/* r NULL: the app whose init/fini runs now (as for vlog). */
static const char *api_mount_arg(fh_req *r, const char **prefix)
{
    struct app *a = r ? AQ(r)->app : crash_app;
    if (prefix)
        *prefix = r ? AQ(r)->rq->mount->prefix : a ? a->prefix : NULL;
    return a ? a->arg : NULL;
}

static const struct fh_api api = {
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

/* ---- the stream body, as the core pulls it ---- */

static ssize_t stream_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    struct areq *q = ctx;
    if (q->stream_len >= 0) {
        int64_t left = q->stream_len - q->stream_sent;
        if (left == 0)
            return 0; /* the promised length is out: the body is complete */
        if ((int64_t)cap > left)
            cap = (size_t)left;
    }
    *wait_fd = -1;
    /* the head is (being) sent: a crash here cannot answer 500 any more */
    crash_enter(q->app, q->rq, 0, " in its stream");
    ssize_t n = q->sread(q->sctx, buf, cap, wait_fd);
    crash_leave();
    const char *rl;
    size_t rll;
    if (n == FH_AGAIN) {
        if (*wait_fd >= 0)
            return FH_AGAIN;
        rll = request_line(q->rq, &rl);
        warn("app %s: stream returned FH_AGAIN without a wait_fd; aborting \"%.*s\"",
             q->app->name, (int)rll, rl);
        return -1;
    }
    if (n < 0 || (size_t)n > cap) {
        rll = request_line(q->rq, &rl);
        warn("app %s: stream %s; aborting \"%.*s\"", q->app->name,
             n < 0 ? "failed" : "returned more than asked for", (int)rll, rl);
        return -1;
    }
    if (n == 0 && q->stream_len >= 0) { /* short of the length in the head */
        rll = request_line(q->rq, &rl);
        warn("app %s: stream ended after %lld of %lld bytes; aborting \"%.*s\"",
             q->app->name, (long long)q->stream_sent, (long long)q->stream_len, (int)rll, rl);
        return -1;
    }
    q->stream_sent += n;
    return n;
}

static void stream_close(void *ctx)
{
    struct areq *q = ctx;
    if (q->sclose) {
        crash_enter(q->app, q->rq, 0, " in its stream's close");
        q->sclose(q->sctx);
        crash_leave();
    }
    areq_put(q);
}

/* ---- the handler ---- */

static void fail_500(struct areq *q, struct response *resp)
{
    const char *rl;
    size_t n = request_line(q->rq, &rl);
    warn("app %s: %s; answering 500 to \"%.*s\"", q->app->name, q->why, (int)n, rl);
    if (q->body == B_STREAM && q->sclose) {
        crash_enter(q->app, q->rq, q->rq->crash_ok, " in its stream's close");
        q->sclose(q->sctx);
        crash_leave();
    }
    resp_error(resp, 500); /* also drops the header lines the app added */
    areq_put(q);           /* frees the write buffer, closes a file */
}

static int starting_up; /* inside app_startup() */

static int start_app(struct app *a)
{
    if (a->ready || a->broken)
        return a->ready;
    if (a->init) {
        crash_enter(a, NULL, 0, " in its init");
        int rc = a->init(&api, &a->state);
        crash_leave();
        if (rc != 0) {
            if (!starting_up) /* at startup, app_startup() reports it (one line) */
                log_error("app %s: %s_init returned %d; its requests get 500 in this process",
                     a->name, a->symbol, rc);
            a->broken = 1;
            return 0;
        }
    }
    a->ready = 1;
    return 1;
}

void h_app(const struct request *req, struct response *resp)
{
    struct app *a = req->mount->app;
    if (!a || !start_app(a)) {
        resp_error(resp, 500);
        return;
    }
    struct areq *q = areq_get();
    if (!q) {
        log_error("app %s: out of memory", a->name);
        resp_error(resp, 503);
        return;
    }
    q->app = a;
    q->rq = req;
    q->resp = resp;
    fh_req *r = &q->pub;
    const struct http_req *h = req->h;
    const struct mount *m = req->mount;
    r->api = &api;
    r->state = a->state;
    r->method = view(h->method);
    r->target = view(h->target);
    r->path.ptr = req->path;
    r->path.len = req->path_len;
    size_t pl = m->prefix_len == 1 ? 0 : m->prefix_len; /* mount "/": SCRIPT_NAME "" */
    r->script_name.ptr = m->prefix;
    r->script_name.len = pl;
    r->path_info.ptr = req->path + pl;
    r->path_info.len = req->path_len - pl;
    r->query = view(h->query);
    r->protocol.ptr = h->version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    r->protocol.len = 8;
    r->content_length = req->body_fd >= 0 ? req->body_len : 0;

    crash_enter(a, req, 1, "");
    int rc = a->fn(r);
    crash_leave();
    q->open = 0;

    if (rc != 0)
        refuse(q, "the handler returned %d", rc);
    int64_t blen = q->body == B_STATIC ? (int64_t)q->slen
                 : q->body == B_BUF    ? (int64_t)q->len
                 : q->body == B_FILE   ? q->flen
                 : q->body == B_STREAM ? q->stream_len
                                       : 0;
    if (q->body == B_STREAM && blen < 0)
        blen = q->declared; /* the app's Content-Length is the stream's length */
    if (q->declared >= 0 && blen != q->declared)
        refuse(q, "Content-Length %lld but a body of %lld bytes", (long long)q->declared,
               (long long)blen);
    if ((q->status == 204 || q->status == 304) && (blen != 0 || q->body == B_STREAM))
        refuse(q, "a body with status %d", q->status);
    if (q->failed) {
        fail_500(q, resp);
        return;
    }

    resp->status = q->status;
    resp->length = blen;
    switch (q->body) {
    case B_NONE:
        resp->body = BODY_NONE;
        break;
    case B_STATIC:
        resp->body = BODY_MEM;
        resp->mem = q->smem;
        break;
    case B_BUF:
        if (!q->buf) { /* only empty fh_write calls: no memory to hand over */
            resp->body = BODY_NONE;
            break;
        }
        resp->body = BODY_MEM;
        resp->mem = q->buf;
        resp->mem_free = q->buf; /* the core frees it once sent */
        q->buf = NULL;
        break;
    case B_FILE:
        resp->body = BODY_FILE;
        resp->fd = q->fd;
        resp->off = (off_t)q->foff;
        q->fd = -1;
        break;
    case B_STREAM:
        resp->body = BODY_STREAM;
        resp->stream.read = stream_read;
        resp->stream.close = stream_close;
        resp->stream.ctx = q;
        q->stream_len = blen;
        return; /* q lives until stream_close */
    }
    areq_put(q);
}

/* ---- load / unload ---- */

/* dlsym finds names in the object's dependencies too (libc's "printf"):
 * only a definition inside FILE.so itself counts. */
static void *own_sym(void *dl, const char *name)
{
    void *p = dlsym(dl, name);
    if (!p)
        return NULL;
    struct link_map *lm = NULL;
    Dl_info info;
    if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) == 0 && lm && dladdr(p, &info) && info.dli_fname &&
        strcmp(info.dli_fname, lm->l_name) != 0)
        return NULL;
    return p;
}

static void app_free(struct app *a)
{
    if (a->dl)
        dlclose(a->dl);
    free(a->name);
    free(a);
}

static struct app *app_open(const struct mount *m)
{
    const char *spec_file = m->file, *sym = m->symbol;
    char path[PATH_MAX];
    /* "x.so" is a file here, not a name for the library search path */
    int n = snprintf(path, sizeof path, "%s%s", strchr(spec_file, '/') ? "" : "./", spec_file);
    if (n < 0 || (size_t)n >= sizeof path) {
        fprintf(stderr, "forkhttpd: --app %s:%s: path too long\n", spec_file, sym);
        return NULL;
    }
    struct app *a = calloc(1, sizeof *a);
    size_t nl = strlen(spec_file) + 1 + strlen(sym) + 1 + (m->label ? strlen(m->label) : 0);
    if (!a || !(a->name = malloc(nl))) {
        fprintf(stderr, "forkhttpd: --app %s:%s: out of memory\n", spec_file, sym);
        free(a);
        return NULL;
    }
    if (m->label)
        snprintf(a->name, nl, "%s", m->label);
    else
        snprintf(a->name, nl, "%s:%s", spec_file, sym);
    a->file = m->file;
    a->symbol = m->symbol;
    a->arg = m->arg;
    a->prefix = m->prefix;
    a->start = m->start;
    a->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!a->dl) {
        fprintf(stderr, "forkhttpd: %s%s: cannot open: %s\n", m->label ? "--" : "--app ", a->name,
                dlerror());
        goto fail;
    }
    a->fn = (fh_handler *)own_sym(a->dl, sym);
    if (!a->fn) {
        fprintf(stderr, "forkhttpd: --app %s: no symbol '%s' in %s\n", a->name, sym, spec_file);
        goto fail;
    }
    const unsigned *ver = own_sym(a->dl, VERSION_SYMBOL);
    if (!ver) {
        fprintf(stderr,
                "forkhttpd: --app %s: not a forkhttpd app: no symbol " VERSION_SYMBOL
                " (build it including forkhttpd_app.h)\n",
                a->name);
        goto fail;
    }
    if (*ver != FH_APP_API_VERSION) {
        fprintf(stderr,
                "forkhttpd: --app %s: built for app API version %u, this server has version "
                "%d: rebuild it against this server's forkhttpd_app.h\n",
                a->name, *ver, FH_APP_API_VERSION);
        goto fail;
    }
    char hook[256];
    snprintf(hook, sizeof hook, "%s_init", sym);
    a->init = (fh_init *)own_sym(a->dl, hook);
    snprintf(hook, sizeof hook, "%s_fini", sym);
    a->fini = (fh_fini *)own_sym(a->dl, hook);
    return a;
fail:
    app_free(a);
    return NULL;
}

static int app_startup_(struct app *a);

/* APP_START_PRELOAD: init here, before listening; every process forked later
 * inherits the ready state (and does not run init again). APP_START_CHECK:
 * init once in a throw-away child, so an app that cannot start (a WSGI module
 * that does not import) stops the server with exit 2 before it listens, while
 * each worker still runs its own init. A failing init is expected to log its
 * reason (one line); the server adds a line only when it did not. */
static int app_startup(struct app *a)
{
    starting_up = 1;
    int rc = app_startup_(a);
    starting_up = 0;
    return rc;
}

static int app_startup_(struct app *a)
{
    if (a->start == APP_START_PRELOAD) {
        start_app(a);
        if (a->ready)
            return 0;
        if (!a->logged)
            fprintf(stderr, "forkhttpd: app %s: %s_init failed at startup\n", a->name, a->symbol);
        return -1;
    }
    if (a->start != APP_START_CHECK || !a->init)
        return 0;
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        log_error("app %s: fork for the startup check:", a->name);
        return -1;
    }
    if (pid == 0) {
        start_app(a);
        if (!a->ready && !a->logged)
            fprintf(stderr, "forkhttpd: app %s: %s_init failed at startup\n", a->name,
                    a->symbol);
        /* no fini, no atexit handlers, no leak report: this process only looked */
        fflush(NULL);
        _exit(a->ready ? 0 : 2);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st))
        fprintf(stderr, "forkhttpd: app %s: %s_init crashed with signal %d (%s) at startup\n",
                a->name, a->symbol, WTERMSIG(st), strsignal(WTERMSIG(st)));
    return -1;
}

int h_app_load(void)
{
    for (int i = 0; i < cfg.nmounts; i++) {
        struct mount *m = &cfg.mounts[i];
        if (m->kind != MOUNT_APP)
            continue;
        struct app *a = NULL;
        /* one instance per FILE.so:SYMBOL and argument (several --wsgi mounts
         * share wsgi.so:app, each with its own module:callable) */
        for (int k = 0; k < napps && !a; k++)
            if (!strcmp(apps[k]->file, m->file) && !strcmp(apps[k]->symbol, m->symbol) &&
                (apps[k]->arg == m->arg ||
                 (apps[k]->arg && m->arg && !strcmp(apps[k]->arg, m->arg))))
                a = apps[k];
        if (!a) {
            a = app_open(m);
            if (!a) {
                h_app_unload();
                return -1;
            }
            apps[napps++] = a;
        }
        m->app = a;
    }
    for (int k = 0; k < napps; k++) {
        if (app_startup(apps[k]) < 0) {
            h_app_unload();
            return -1;
        }
    }
    return 0;
}

/* fini for apps that are ready in this process outside h_worker_start/stop
 * (preloaded in the first process). */
static void fini_ready(void)
{
    for (int k = 0; k < napps; k++) {
        struct app *a = apps[k];
        if (a->ready && a->fini) {
            crash_enter(a, NULL, 0, " in its fini");
            a->fini(&api, a->state);
            crash_leave();
        }
        a->ready = 0;
        a->state = NULL;
    }
}

void h_app_unload(void)
{
    fini_ready();
    for (int i = 0; i < cfg.nmounts; i++)
        if (cfg.mounts[i].kind == MOUNT_APP)
            cfg.mounts[i].app = NULL;
    for (int k = 0; k < napps; k++)
        app_free(apps[k]);
    napps = 0;
    areq_pool_free();
}

void h_worker_start(void)
{
    if (napps == 0)
        return;
    crash_install();
    for (int k = 0; k < napps; k++)
        start_app(apps[k]);
}

void h_worker_stop(void)
{
    fini_ready();
    areq_pool_free();
    crash_uninstall();
}
