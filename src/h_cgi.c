/* h_cgi.c - CGI/1.1 (RFC 3875): --cgi PREFIX=DIR runs the executables in DIR.
 *
 *   h_cgi          find the script (walk the path below PREFIX: the first
 *                  segment naming a regular file is the script, the rest is
 *                  PATH_INFO), build a clean environment, posix_spawn it with
 *                  the spooled request body as stdin and a pipe as stdout;
 *                  answer with a *deferred* head and a stream body
 *   cgi_prepare    (the core calls it until it returns 0 or -1) read the
 *                  script's header block, validate it, turn it into the
 *                  response head: document, local or client redirect
 *   cgi_read       the body: the bytes after the header block, then the pipe
 *   cgi_close      close the pipe, kill the process group if the response
 *                  was cut short, reap - without waiting: what has not
 *                  exited yet is reaped later by h_cgi_reap(); no zombie,
 *                  whatever happened
 *
 * No SIGCHLD handler: the process that spawned a script (the fork model's
 * per-connection child, a prefork/event worker, the iterative server) reaps
 * exactly that pid, in cgi_close() or h_cgi_reap(). A global handler doing
 * waitpid(-1) would steal the status from under whoever else forks in that
 * process.
 *
 * Why posix_spawn: glibc implements it with clone(CLONE_VM|CLONE_VFORK), so a
 * worker with a large heap is not copied (fork() would copy its page tables
 * and every later write would fault in a copy-on-write page). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgi_head.h"
#include "environ.h"
#include "confine.h"
#include "handler.h"
#include "log.h"
#include "owned_hdr.h"
#include "scoreboard.h"
#include "net.h"

#define CGI_HEAD_MAX 16384     /* the script's header block, at most (else 502) */
#define CGI_ENV_MAX (32 + HTTP_MAX_HEADERS)
#define REAP_GRACE_MS 100      /* a script that closed stdout gets this long to exit */

/* One running script; also the ctx of the deferred head and the body stream. */
struct cgi {
    pid_t pid;         /* the script, leader of its own process group; 0 once reaped
                          (or handed to the h_cgi_to_reap list) */
    int fd;            /* read end of its stdout pipe (non-blocking); -1 once closed */
    int eof;           /* the script closed its stdout */
    int64_t left;      /* body bytes still to pass on (the script's Content-Length), -1: all */
    size_t len;        /* bytes in head[] */
    size_t scan;       /* start of the first header line not yet known complete */
    size_t body_off;   /* once the head is parsed: head[body_off..len) is body */
    char name[256];    /* the script's URL path, for log lines */
    char head[CGI_HEAD_MAX];
};

static int active; /* scripts running in this process (--cgi-max) */

/* ---- finding the script ---- */

struct script {
    char real[PATH_MAX];    /* resolved absolute path: what is executed */
    size_t name_len;        /* req->path[0..name_len) is SCRIPT_NAME */
};

/* Walk the segments after the mount prefix: the first one naming a regular
 * file is the script. Returns 0, or the HTTP status to answer. */
static int find_script(const struct request *req, struct script *s)
{
    const struct mount *m = req->mount;
    const char *path = req->path;
    size_t len = req->path_len;
    size_t start = m->prefix_len == 1 ? 0 : m->prefix_len; /* rest: "" or "/..." */
    char rel[PATH_MAX];
    size_t pos = start;
    while (pos < len) {
        while (pos < len && path[pos] == '/')
            pos++;
        if (pos == len)
            break;
        size_t end = pos;
        while (end < len && path[end] != '/')
            end++;
        size_t rl = end - (start + 1);
        if (rl >= sizeof rel)
            return 404;
        memcpy(rel, path + start + 1, rl);
        rel[rl] = 0;
        /* O_PATH: nothing is opened but the inode (confine.h) */
        int fd = confine_open(m->dir_fd, rel, O_PATH);
        if (fd < 0)
            return confine_status(errno);
        struct stat st;
        int ok = fstat(fd, &st) == 0;
        if (ok && S_ISDIR(st.st_mode)) {
            close(fd);
            pos = end;
            continue;
        }
        /* The real path, from the kernel's view of the open file: it is what
         * we execute, so a symlink swapped after this check cannot redirect
         * us outside DIR (and it double-checks the confinement). */
        char proc[32];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = ok ? readlink(proc, s->real, sizeof s->real - 1) : -1;
        close(fd);
        if (n <= 0)
            return 500;
        s->real[n] = 0;
        size_t dl = strlen(m->dir);
        if ((size_t)n <= dl || memcmp(s->real, m->dir, dl) != 0 ||
            (s->real[dl] != '/' && dl > 1))
            return 403;
        if (!S_ISREG(st.st_mode))
            return 403; /* a FIFO, a device... */
        if (!(st.st_mode & 0111) || access(s->real, X_OK) < 0)
            return 403; /* not executable (root passes access() only if some x bit is set) */
        s->name_len = end;
        return 0;
    }
    return 404; /* a directory, with no script named in it */
}

/* ---- the environment (RFC 3875 section 4.1) ---- */

struct envb {
    char *buf;
    size_t len, cap;
    size_t off[CGI_ENV_MAX];
    int n;
    int oom;
};

/* Room for n more bytes and a NUL: 0, or -1 (out of memory, e->oom set). */
static int env_reserve(struct envb *e, size_t n)
{
    if (e->oom)
        return -1;
    if (e->len + n + 1 > e->cap) {
        size_t cap = e->cap ? e->cap : 4096;
        while (e->len + n + 1 > cap)
            cap *= 2;
        char *b = realloc(e->buf, cap);
        if (!b) {
            e->oom = 1;
            return -1;
        }
        e->buf = b;
        e->cap = cap;
    }
    return 0;
}

static void env_cat(struct envb *e, const char *p, size_t n)
{
    if (env_reserve(e, n) < 0)
        return;
    memcpy(e->buf + e->len, p, n);
    e->len += n;
}

static void env_begin(struct envb *e, const char *name)
{
    if (e->n >= CGI_ENV_MAX - 1) { /* cannot happen: sized for every header */
        e->oom = 1;
        return;
    }
    e->off[e->n] = e->len;
    env_cat(e, name, strlen(name));
    env_cat(e, "=", 1);
}

static void env_end(struct envb *e)
{
    env_cat(e, "", 1); /* the NUL */
    if (!e->oom)
        e->n++;
}

static void env_putn(struct envb *e, const char *name, const char *v, size_t vlen)
{
    env_begin(e, name);
    env_cat(e, v, vlen);
    env_end(e);
}

static void env_put(struct envb *e, const char *name, const char *v)
{
    env_putn(e, name, v, strlen(v));
}

static void env_putf(struct envb *e, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void env_putf(struct envb *e, const char *name, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= 0)
        env_putn(e, name, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* HTTP_* for the header fields environ.c exports (its rules: no Proxy, no
 * '_' in names, no framing fields, repeated fields joined). */
static void env_headers(struct envb *e, const struct http_req *h)
{
    size_t pos = 0;
    int i;
    while ((i = env_next_field(h, &pos)) >= 0) {
        char var[ENV_VAR_MAX + 1];
        env_var_name(h, i, var, sizeof var);
        env_begin(e, var);
        size_t n = env_var_value(h, i, NULL, 0); /* its length, then the value */
        if (env_reserve(e, n) == 0) {
            env_var_value(h, i, e->buf + e->len, n);
            e->len += n;
        }
        env_end(e);
    }
}

static const char *doc_root(void)
{
    for (int i = 0; i < cfg.nmounts; i++)
        if (cfg.mounts[i].kind == MOUNT_STATIC)
            return cfg.mounts[i].dir;
    return "";
}

static void build_env(struct envb *e, const struct request *req, const struct script *s)
{
    const struct http_req *h = req->h;
    char addr[INET6_ADDRSTRLEN];
    int port = 0;

    env_put(e, "PATH", "/usr/local/bin:/usr/bin:/bin");
    env_put(e, "GATEWAY_INTERFACE", "CGI/1.1");
    env_put(e, "SERVER_SOFTWARE", FH_SERVER);
    env_put(e, "SERVER_PROTOCOL", env_protocol(h));
    for (int i = 0; req->tls && i < ENV_TLS_VARS; i++) { /* HTTPS=on, SSL_* (environ.h) */
        const char *n, *v = env_tls_var(req->tls, i, &n);
        if (v)
            env_put(e, n, v);
    }
    env_putn(e, "REQUEST_METHOD", h->method.p, h->method.len);

    /* SERVER_NAME: the Host the client asked for, without its port; else our address */
    net_addr_str(&req->local, addr, sizeof addr, &port);
    struct http_str sname = env_server_name(h);
    if (sname.len)
        env_putn(e, "SERVER_NAME", sname.p, sname.len);
    else
        env_put(e, "SERVER_NAME", addr);
    env_putf(e, "SERVER_PORT", "%d", port);

    net_addr_str(req->peer, addr, sizeof addr, &port);
    env_put(e, "REMOTE_ADDR", addr);
    env_put(e, "REMOTE_HOST", addr); /* RFC 3875 4.1.9: the address when no name is looked up */
    env_putf(e, "REMOTE_PORT", "%d", port);

    env_putn(e, "SCRIPT_NAME", req->path, s->name_len);
    env_put(e, "SCRIPT_FILENAME", s->real);
    const char *root = doc_root();
    env_put(e, "DOCUMENT_ROOT", root);
    if (s->name_len < req->path_len) {
        const char *pi = req->path + s->name_len;
        size_t pil = req->path_len - s->name_len;
        env_putn(e, "PATH_INFO", pi, pil);
        /* PATH_INFO mapped onto the document root, as a static request would be */
        env_begin(e, "PATH_TRANSLATED");
        env_cat(e, root, strcmp(root, "/") == 0 ? 0 : strlen(root));
        env_cat(e, pi, pil);
        env_end(e);
    }
    env_putn(e, "QUERY_STRING", h->query.p ? h->query.p : "", h->query.p ? h->query.len : 0);
    /* REQUEST_URI: the path and query as sent (also for an absolute-form target) */
    env_begin(e, "REQUEST_URI");
    env_cat(e, h->path.p, h->path.len);
    if (h->query.p) {
        env_cat(e, "?", 1);
        env_cat(e, h->query.p, h->query.len);
    }
    env_end(e);

    if (env_has_body(h)) /* RFC 3875 4.1.2: only when there is a body; de-chunked */
        env_putf(e, "CONTENT_LENGTH", "%lld", req->body_fd >= 0 ? (long long)req->body_len : 0);
    struct http_str ct = env_content_type(h);
    if (ct.p)
        env_putn(e, "CONTENT_TYPE", ct.p, ct.len);
    /* We authenticate nobody; the script may, so it gets the scheme here and
     * the credentials in HTTP_AUTHORIZATION (as lighttpd passes them). */
    const struct http_header *au = http_req_header(h, "Authorization");
    if (au) {
        size_t n = 0;
        while (n < au->value.len && au->value.p[n] != ' ')
            n++;
        env_putn(e, "AUTH_TYPE", au->value.p, n);
    }
    env_headers(e, h);
}

/* ---- spawning ---- */

/* Start the script: stdin = the spooled body (or /dev/null), stdout = a pipe
 * (its read end returned in *rfd, non-blocking), stderr = ours (the error
 * log), cwd = its directory, fds 3.. closed, default signal dispositions and
 * an empty mask (we ignore SIGPIPE; the script must not inherit that), its
 * own process group (a timeout kills the whole group). Returns 0 or an errno. */
static int spawn(const struct request *req, const struct script *s, char **envp, pid_t *pid,
                 int *rfd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return errno;
    /* only our end is non-blocking: the flag lives on the open file, and the
     * script must get an ordinary blocking stdout */
    fcntl(p[0], F_SETFL, O_NONBLOCK);

    char dir[PATH_MAX];
    memcpy(dir, s->real, sizeof dir);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    const char *base = strrchr(s->real, '/');
    char *argv[] = {(char *)(uintptr_t)(base ? base + 1 : s->real), NULL};

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    if (req->body_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, req->body_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addchdir_np(&fa, dir); /* RFC 3875 7.2 */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Everything we open is O_CLOEXEC already; this makes "only 0, 1, 2"
     * hold even for an fd some library opened without it. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);

    int rc = posix_spawn(pid, s->real, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]); /* the script holds the only write end: its exit means EOF */
    if (rc != 0) {
        close(p[0]);
        return rc;
    }
    *rfd = p[0];
    return 0;
}

/* ---- reaping, never waiting ---- */

/* Wait up to ms for pid to exit, without reaping it. 1 if it has exited.
 * Only where waiting is allowed: h_cgi_reap(1). */
static int wait_exit(pid_t pid, int ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int n;
        do
            n = poll(&p, 1, ms);
        while (n < 0 && errno == EINTR);
        close(pfd);
        return n > 0;
    }
    for (int i = 0; i < ms; i++) { /* no pidfd (Linux < 5.3): look every ms */
        siginfo_t si;
        si.si_pid = 0;
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
            return 1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* A worker does not wait for a script whose response is over: what has not
 * exited yet goes on the h_cgi_to_reap list, which h_cgi_reap() looks at again
 * later (the event model's sweep, serve.c's poll loop, the next h_cgi) and,
 * after a connection in the blocking models or at a worker's exit, waits for.
 *
 * A script keeps its --cgi-max slot (active, the scoreboard's cgi) until it is
 * reaped, not merely killed: the count is of processes really there, and the
 * list never holds more than --cgi-max entries. A killed script is normally
 * reaped within a millisecond; one that closed its stdout holds its slot for
 * at most its grace (REAP_GRACE_MS, plus up to a sweep in the event model). */
struct reaping {
    struct reaping *next;
    pid_t pid;
    int killed;        /* its group got SIGKILL */
    uint64_t kill_at;  /* not killed: the end of its grace (ms, monotonic) */
    char name[256];    /* for log lines */
};

struct reaping *h_cgi_to_reap;

#define REAP_RETRY_MS 10 /* killed, not reaped yet: look again this soon */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* waitpid(pid, WNOHANG): 1 if it is gone (reaped: *st set; or ECHILD), 0 if not. */
static int try_wait(pid_t pid, int *st)
{
    pid_t r;
    do
        r = waitpid(pid, st, WNOHANG);
    while (r < 0 && errno == EINTR);
    return r != 0;
}

/* The script is reaped: say how it ended (quiet: we killed it, or the
 * caller says it; the reason is logged already), free its slot. */
static void reaped(const char *name, int st, int quiet)
{
    if (!quiet) {
        if (WIFSIGNALED(st))
            warn("cgi %s: killed by signal %d (%s)", name, WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
        else if (WIFEXITED(st) && WEXITSTATUS(st) != 0 && log_verbose_on)
            vlog("cgi %s: exit status %d", name, WEXITSTATUS(st));
    }
    active--;
    sb_cgi_ended();
}

/* The response is over: reap the script, without waiting. finished: it
 * closed its stdout (the normal end) and gets REAP_GRACE_MS to exit by
 * itself; then what it left running in the background is its own business.
 * Otherwise (timeout, client gone, bad output) the whole process group is
 * killed now - before the leader is reaped, while its pid (the group's id)
 * cannot have been reused. */
static void reap(struct cgi *c, int finished)
{
    if (c->pid <= 0)
        return;
    int st = 0, killed = 0;
    if (!finished) {
        kill(-c->pid, SIGKILL);
        killed = 1;
    }
    struct reaping *r = NULL;
    if (!try_wait(c->pid, &st) && !(r = malloc(sizeof *r))) {
        /* no memory for the list: the old way, kill and wait here */
        if (!killed)
            kill(-c->pid, SIGKILL);
        killed = 1;
        while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (r) {
        r->pid = c->pid;
        r->killed = killed;
        r->kill_at = killed ? 0 : mono_ms() + REAP_GRACE_MS;
        memcpy(r->name, c->name, sizeof r->name);
        r->next = h_cgi_to_reap;
        h_cgi_to_reap = r;
    } else {
        reaped(c->name, st, killed);
    }
    c->pid = 0;
}

int h_cgi_reap_list(int block)
{
    int next = -1;
    struct reaping **pp = &h_cgi_to_reap;
    while (*pp) {
        struct reaping *r = *pp;
        int st = 0, gone = try_wait(r->pid, &st);
        uint64_t now = mono_ms();
        if (!gone && block && !r->killed && r->kill_at > now &&
            wait_exit(r->pid, (int)(r->kill_at - now)))
            gone = try_wait(r->pid, &st);
        if (!gone && !r->killed && (block || mono_ms() >= r->kill_at)) {
            kill(-r->pid, SIGKILL); /* its grace is over */
            r->killed = 1;
            gone = try_wait(r->pid, &st);
        }
        if (!gone && block) {
            while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR)
                ;
            gone = 1;
        }
        if (gone) {
            reaped(r->name, st, r->killed);
            *pp = r->next;
            free(r);
            continue;
        }
        int ms = r->killed ? REAP_RETRY_MS : (int)(r->kill_at - now);
        if (next < 0 || ms < next)
            next = ms;
        pp = &r->next;
    }
    return next;
}

/* ---- the script's output ---- */

/* Bad output: a log line, the pipe closed, the script killed and reaped; the
 * core answers 502. */
static int bad_gateway(struct cgi *c, struct response *resp, const char *why)
{
    warn("cgi %s: %s; answering 502", c->name, why);
    resp->status = 502;
    resp->hdr_len = 0;
    return -1;
}

/* The header block head[0..end) is complete: turn it into resp. 0 or -1. */
static int parse_head(struct cgi *c, struct response *resp, size_t end)
{
    struct cgi_head h;
    /* into hdr, not resp->content_type: that must outlive c, which the core
     * may free (HEAD, 204) before it writes the head */
    resp->hdr_len = 0;
    if (cgi_head_parse(c->head, end, &h, resp->hdr, sizeof resp->hdr, &resp->hdr_len) < 0)
        return bad_gateway(c, resp, h.why);
    /* The fields the core writes itself (owned_hdr.h) were dropped: said
     * once per field name and process, so a script that always sends Date
     * does not fill the log. */
    static unsigned logged;
    for (int i = 0; i < OWNED_HDR_COUNT; i++)
        if ((h.dropped & ~logged) & (1u << i)) {
            logged |= 1u << i;
            warn("cgi %s: dropped its %s field: the server writes it (logged once per process)",
                 c->name, owned_hdr_name(i));
        }
    resp->status = h.status;
    resp->content_type = NULL;
    /* A Content-Length the script promised is passed on (no chunked framing,
     * HTTP/1.0 keeps alive) and enforced in cgi_read; else the length is
     * unknown: chunked on HTTP/1.1, close-delimited on 1.0. */
    resp->length = h.length;
    c->left = h.length;
    c->body_off = end;
    return 0;
}

static int cgi_prepare(void *ctx, struct response *resp, int *wait_fd)
{
    struct cgi *c = ctx;
    for (;;) {
        size_t end = cgi_head_end(c->head, c->len, &c->scan);
        if (end)
            return parse_head(c, resp, end);
        if (c->len == sizeof c->head)
            return bad_gateway(c, resp, "header block longer than 16 KiB");
        ssize_t r = read(c->fd, c->head + c->len, sizeof c->head - c->len);
        if (r > 0) {
            c->len += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *wait_fd = c->fd;
            return FH_AGAIN;
        }
        if (r < 0)
            return bad_gateway(c, resp, "cannot read its output");
        /* EOF before the header block ended: say why, if it crashed and has
         * been reaped already (else the h_cgi_to_reap list will say it) */
        c->eof = 1;
        int st = 0;
        if (c->pid > 0 && try_wait(c->pid, &st)) {
            reaped(c->name, st, 1); /* quiet: the warning below says it */
            c->pid = 0;
        }
        char why[128];
        if (WIFSIGNALED(st))
            snprintf(why, sizeof why, "killed by signal %d (%s) before its header block ended",
                     WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            snprintf(why, sizeof why, "output ended before the header block (%zu bytes)",
                     c->len);
        return bad_gateway(c, resp, why);
    }
}

static ssize_t cgi_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    struct cgi *c = ctx;
    if (c->left == 0)
        return 0;
    if (c->left > 0 && (uint64_t)c->left < cap)
        cap = (size_t)c->left;
    if (c->body_off < c->len) { /* what came with the header block */
        size_t n = c->len - c->body_off;
        if (n > cap)
            n = cap;
        memcpy(buf, c->head + c->body_off, n);
        c->body_off += n;
        if (c->left > 0)
            c->left -= (int64_t)n;
        return (ssize_t)n;
    }
    if (c->eof)
        return 0;
    for (;;) {
        ssize_t r = read(c->fd, buf, cap);
        if (r > 0) {
            if (c->left > 0)
                c->left -= r;
            return r;
        }
        if (r == 0) {
            c->eof = 1;
            if (c->left > 0) {
                warn("cgi %s: output ended %lld bytes short of its Content-Length", c->name,
                     (long long)c->left);
                return -1; /* the client must not take a short body for a whole one */
            }
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *wait_fd = c->fd;
            return FH_AGAIN;
        }
        warn("cgi %s: reading its output:", c->name);
        return -1;
    }
}

static void cgi_close(void *ctx)
{
    struct cgi *c = ctx;
    if (c->fd >= 0)
        close(c->fd); /* first: a script still writing gets SIGPIPE */
    c->fd = -1;
    /* finished: EOF, or all the bytes its Content-Length promised; else
     * (no head yet, the client left, a timeout) the group is killed now */
    reap(c, c->eof || c->left == 0);
    free(c);
}

/* ---- the handler ---- */

void h_cgi(const struct request *req, struct response *resp)
{
    h_cgi_reap(0); /* scripts that ended since the last look free their slots */
    if (active >= cfg.cgi_max) {
        sb_shed(SHED_CGI_BUSY); /* one line a second at most: no flood under load */
        warn_limited(sb_limit(SHED_CGI_BUSY), "cgi: %d scripts running (--cgi-max); answering 503 with Retry-After",
                     active);
        resp_error(resp, 503);
        resp_header(resp, "Retry-After", "1");
        return;
    }
    struct script s;
    int st = find_script(req, &s);
    if (st) {
        resp_error(resp, st);
        return;
    }
    struct cgi *c = malloc(sizeof *c);
    struct envb e;
    memset(&e, 0, sizeof e);
    char *envp[CGI_ENV_MAX];
    if (!c)
        goto fail;
    build_env(&e, req, &s);
    if (e.oom)
        goto fail;
    for (int i = 0; i < e.n; i++)
        envp[i] = e.buf + e.off[i];
    envp[e.n] = NULL;

    int rc = spawn(req, &s, envp, &c->pid, &c->fd);
    free(e.buf);
    e.buf = NULL;
    if (rc) {
        errno = rc;
        warn("cgi %.*s: cannot run %s:", (int)s.name_len, req->path, s.real);
        free(c);
        resp_error(resp, rc == EACCES ? 403 : rc == ENOEXEC || rc == ENOENT ? 502 : 503);
        return;
    }
    active++;
    sb_cgi_started(); /* for the status page */
    c->eof = 0;
    c->left = -1;
    c->len = c->scan = c->body_off = 0;
    snprintf(c->name, sizeof c->name, "%.*s", (int)s.name_len, req->path);
    vlog("cgi %s: spawned PID %d", c->name, (int)c->pid);

    resp->status = 200;
    resp->length = -1;
    resp->body = BODY_STREAM;
    resp->stream.read = cgi_read;
    resp->stream.close = cgi_close;
    resp->stream.ctx = c;
    resp->deferred.prepare = cgi_prepare;
    resp->deferred.ctx = c;
    resp->timeout_ms = cfg.cgi_timeout;
    return;
fail:
    log_error("cgi: out of memory");
    free(c);
    free(e.buf);
    resp_error(resp, 503);
}
