/* main.c - forkload: argument parsing, the request built once, fork of the
 * client processes, merging their reports from pipes, and the summary.
 *
 * The parent never touches the network during the run: it forks --clients
 * processes (client.c), reads their progress and final reports from one
 * pipe each, reaps every one of them with waitpid, and prints. */
#include "forkload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#define MAX_CLIENTS   1024
#define MAX_PIPELINE  1024
#define MAX_BODY      (64L * 1024 * 1024)
#define FD_RESERVE    16 /* stdio, epoll, pipe, and some slack */

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("forkload: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static const char help_text[] =
"NAME\n"
"    forkload - a forking HTTP/1.1 load generator\n"
"\n"
"SYNOPSIS\n"
"    forkload [options] http://host[:port][/path][?query]\n"
"    forkload [options] [--cacert FILE | --insecure] [--tls-resume] https://...\n"
"\n"
"DESCRIPTION\n"
"    forkload forks --clients processes; each drives --conns concurrent\n"
"    connections from one non-blocking epoll loop, sends the same request\n"
"    over and over, parses every response strictly, and records each\n"
"    request's latency in a histogram (3 significant digits, microseconds).\n"
"    At the end every client reports through a pipe, the parent reaps all of\n"
"    them and prints one summary. Host may be a name, an IPv4 address or a\n"
"    bracketed IPv6 address (http://[::1]:8080/). https:// is HTTP/1.1 over\n"
"    TLS 1.2 or 1.3 (OpenSSL): the certificate is checked against the system's\n"
"    CAs and the URL's host, and each connection makes a full handshake.\n"
"\n"
"OPTIONS\n"
"    --clients N, --max-clients N\n"
"        Fork N client processes (default 1, at most 1024).\n"
"    --conns M, --max-conns M\n"
"        Concurrent connections per client (default 10). Each needs a file\n"
"        descriptor; M above the fd limit (ulimit -n) is refused.\n"
"    --requests K\n"
"        Requests per connection (default 1). Without --keep-alive every\n"
"        request gets its own connection. Total: N * M * K requests.\n"
"    --duration S\n"
"        Keep sending for S seconds instead of a request count; then wait\n"
"        (up to --timeout) for the answers still in flight.\n"
"    -k, --keep-alive\n"
"        Reuse connections for several requests.\n"
"    --pipeline P\n"
"        Keep P requests in flight per connection (implies --keep-alive).\n"
"    --method METHOD\n"
"        Request method (default GET). HEAD responses have no body.\n"
"    -H, --header 'Name: value'\n"
"        Add a request header; repeatable. A Host or Connection header given\n"
"        here replaces forkload's own.\n"
"    --body FILE\n"
"        Send FILE as the request body (with Content-Length).\n"
"    --timeout S\n"
"        Connect and per-request timeout in seconds (default 10).\n"
"    --hold S\n"
"        Open all connections, send the requests, then keep every\n"
"        connection open (even ones the server closed) until S seconds after\n"
"        the start. No 'Connection: close' is sent. This is the tutorial's\n"
"        connection storm: watch the server's children and fds grow.\n"
"        Requests not answered by then are failures (unanswered).\n"
"    --cacert FILE\n"
"        https: trust the CA certificate(s) in FILE (PEM) instead of the\n"
"        system's.\n"
"    --insecure\n"
"        https: do not check the server's certificate.\n"
"    --tls-resume\n"
"        https: each connection slot offers the session (ticket) its last\n"
"        connection got, so new connections resume instead of making a full\n"
"        handshake. The summary counts handshakes and resumed ones.\n"
"    --json\n"
"        Print the summary as one JSON object instead of text.\n"
"    -h, --help\n"
"        Show this help.  -V, --version: print the version.\n"
"\n"
"OUTPUT\n"
"    Every request is counted once, as answered or failed. Answered: a\n"
"    complete response with status 200-599, by class: ok (2xx/3xx), 4xx,\n"
"    5xx. Failed (errors): refused (connect refused/unreachable), reset\n"
"    (RST, or closed before any byte of the response), timeout (connect or\n"
"    response slower than --timeout), malformed (not HTTP/1.1, or cut short),\n"
"    other (e.g. a final 1xx or 6xx status), tls (https: a failed handshake,\n"
"    e.g. an untrusted certificate, or a TLS error), unanswered (sent, or waiting for\n"
"    its connect, and still without an answer when --hold ended). When a\n"
"    connection fails, every request in flight on it fails with the same\n"
"    error. A request the server closed a keep-alive connection on without\n"
"    answering (as it may) is sent again and still counts once.\n"
"    Connections: opened, failed (of which timed out), never completed (still\n"
"    connecting when the run ended), and with keep-alive the reconnects:\n"
"    connections opened beyond one per --conns slot, because the server\n"
"    closed the previous one or because it failed.\n"
"    req/s counts answered requests only, over the whole run; MB/s is 10^6\n"
"    bytes per second of everything received (headers included). Latency is\n"
"    measured from when the request was issued (including the connect for the\n"
"    first request of a connection) to the last byte of its response, for\n"
"    answered requests. Requests in flight on Ctrl-C are reported as\n"
"    cancelled and are neither answered nor failed. With a terminal on\n"
"    stderr, a progress line is printed every second once a run has lasted\n"
"    2 seconds.\n"
"\n"
"EXIT STATUS\n"
"    0  every request was answered (any status: 4xx and 5xx are answers,\n"
"       counted per class in the summary)\n"
"    1  some request failed (an error above), no request was answered at\n"
"       all, or a client process died\n"
"    2  bad arguments (one line on stderr)\n"
"    Ctrl-C stops the run and prints the summary so far.\n"
"\n"
"EXAMPLES\n"
"    forkload --clients 2 --conns 50 -k --duration 10 http://127.0.0.1:8080/\n"
"    forkload --clients 20 --conns 100 --hold 5 http://localhost:8888/hello\n"
"    forkload --json --conns 4 --requests 100 -k http://127.0.0.1:8080/ | jq .\n"
"    forkload --cacert ca.pem --conns 50 --requests 20 --tls-resume https://localhost:8443/\n";

/* ------------------------------------------------------------ arguments */

static long parse_count(const char *opt, const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || s[0] == '-' || s[0] == '+' || s[0] == ' ' || errno == ERANGE || v < 1)
        usage_error("%s: not a positive number: '%s'", opt, s);
    if (v > max)
        usage_error("%s: %ld is too large (at most %ld)", opt, v, max);
    return v;
}

static double parse_secs(const char *opt, const char *s, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v) || !(v > 0))
        usage_error("%s: not a positive number of seconds: '%s'", opt, s);
    if (v > max)
        usage_error("%s: %s is too large (at most %.0f seconds)", opt, s, max);
    return v;
}

static int is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || (ch && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

struct url {
    char host[256];
    char port[8];
    int tls;            /* https:// */
    const char *target; /* path and query, as given */
    size_t target_len;
    int ipv6;
};

static void parse_url(const char *s, struct url *u)
{
    memset(u, 0, sizeof(*u));
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0) {
        p = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        p = s + 8;
        u->tls = 1;
    } else {
        if (strstr(s, "://"))
            usage_error("only http:// and https:// URLs are supported: '%s'", s);
        usage_error("not a URL (want http://host[:port]/path): '%s'", s);
    }
    const char *hend;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend)
            usage_error("unterminated IPv6 address in URL: '%s'", s);
        size_t n = (size_t)(hend - p - 1);
        if (n == 0 || n >= sizeof(u->host))
            usage_error("bad host in URL: '%s'", s);
        memcpy(u->host, p + 1, n);
        u->ipv6 = 1;
        hend++;
    } else {
        hend = p + strcspn(p, ":/?#");
        size_t n = (size_t)(hend - p);
        if (n == 0 || n >= sizeof(u->host))
            usage_error("bad host in URL: '%s'", s);
        memcpy(u->host, p, n);
        if (strchr(u->host, '@'))
            usage_error("user info in URLs is not supported: '%s'", s);
        for (size_t i = 0; i < n; i++)
            if (u->host[i] <= ' ' || u->host[i] == 0x7f)
                usage_error("bad host in URL: '%s'", s);
    }
    strcpy(u->port, u->tls ? "443" : "80");
    p = hend;
    if (*p == ':') {
        p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 5 || (p[n] && !strchr("/?#", p[n])) ||
            strtol(p, NULL, 10) < 1 || strtol(p, NULL, 10) > 65535)
            usage_error("bad port in URL: '%s'", s);
        memcpy(u->port, p, n);
        u->port[n] = 0;
        p += n;
    } else if (*p && !strchr("/?#", *p)) {
        usage_error("bad host in URL: '%s'", s);
    }
    /* Target: everything up to a fragment; default "/". */
    u->target = p;
    u->target_len = strcspn(p, "#");
    for (size_t i = 0; i < u->target_len; i++)
        if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
            usage_error("URL contains a space or control character: '%s'", s);
}

/* Pick the address: the first one getaddrinfo returns, or, when a name has
 * several, the first that accepts a connection. */
static void resolve(struct config *cfg, const struct url *u)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL, *ai, *pick;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "forkload: cannot resolve '%s': %s\n", u->host, gai_strerror(rc));
        exit(1);
    }
    pick = res;
    if (res->ai_next) {
        for (ai = res; ai; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0)
                continue;
            int ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
            close(fd);
            if (ok) {
                pick = ai;
                break;
            }
        }
    }
    memcpy(&cfg->addr, pick->ai_addr, pick->ai_addrlen);
    cfg->addrlen = pick->ai_addrlen;
    freeaddrinfo(res);
}

/* A growable string used only while building the request. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            fputs("forkload: out of memory\n", stderr);
            exit(1);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static char *read_body(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        usage_error("--body: cannot open '%s': %s", path, strerror(errno));
    struct sbuf b = { 0 };
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        sb_add(&b, tmp, n);
        if (b.len > (size_t)MAX_BODY) {
            fclose(f);
            usage_error("--body: '%s' is larger than %ld bytes", path, MAX_BODY);
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err)
        usage_error("--body: cannot read '%s'", path);
    *len = b.len;
    return b.p;
}

static int header_is(const char *h, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

static void build_request(struct config *cfg, const char *method, const struct url *u,
                          char **headers, int nheaders, const char *body, size_t body_len)
{
    struct sbuf b = { 0 };
    int have_host = 0, have_conn = 0, have_cl = 0;
    for (int i = 0; i < nheaders; i++) {
        have_host |= header_is(headers[i], "host");
        have_conn |= header_is(headers[i], "connection");
        have_cl |= header_is(headers[i], "content-length");
    }
    sb_str(&b, method);
    sb_str(&b, " ");
    if (u->target_len == 0 || u->target[0] == '?')
        sb_str(&b, "/");
    sb_add(&b, u->target, u->target_len);
    sb_str(&b, " HTTP/1.1\r\n");
    if (!have_host) {
        sb_str(&b, "Host: ");
        sb_str(&b, cfg->host_header);
        sb_str(&b, "\r\n");
    }
    for (int i = 0; i < nheaders; i++) {
        sb_str(&b, headers[i]);
        sb_str(&b, "\r\n");
    }
    /* One request per connection: say so, so the server closes first and
     * keeps the TIME_WAIT. --hold wants the opposite. */
    if (!cfg->keepalive && !(cfg->hold > 0) && !have_conn)
        sb_str(&b, "Connection: close\r\n");
    if (body && !have_cl) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "Content-Length: %zu\r\n", body_len);
        sb_str(&b, tmp);
    }
    sb_str(&b, "\r\n");
    if (body)
        sb_add(&b, body, body_len);
    cfg->req = b.p;
    cfg->req_len = b.len;
    /* The pipeline copies: a burst of P requests is one contiguous send. */
    size_t p = (size_t)cfg->pipeline;
    cfg->reqs_len = cfg->req_len * p;
    cfg->reqs = malloc(cfg->reqs_len);
    if (!cfg->reqs) {
        fputs("forkload: out of memory\n", stderr);
        exit(1);
    }
    for (size_t i = 0; i < p; i++)
        memcpy(cfg->reqs + i * cfg->req_len, cfg->req, cfg->req_len);
}

/* Each client needs an fd per connection; check before forking rather than
 * fail with EMFILE halfway through the run. */
static void check_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t need = (rlim_t)cfg->conns + FD_RESERVE;
    rlim_t need_parent = (rlim_t)cfg->clients + FD_RESERVE;
    if (need_parent > need)
        need = need_parent;
    if (need <= rl.rlim_cur)
        return;
    if (rl.rlim_max == RLIM_INFINITY || need <= rl.rlim_max) {
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return;
    }
    rlim_t lim = rl.rlim_max == RLIM_INFINITY ? rl.rlim_cur : rl.rlim_max;
    if ((rlim_t)cfg->conns + FD_RESERVE > lim)
        usage_error("--conns: %ld connections per client need %ld file descriptors, "
                    "but the limit is %llu (ulimit -n); use more --clients with fewer --conns",
                    cfg->conns, cfg->conns + FD_RESERVE, (unsigned long long)lim);
    usage_error("--clients: %ld clients need %ld file descriptors in the parent, "
                "but the limit is %llu (ulimit -n)",
                cfg->clients, cfg->clients + FD_RESERVE, (unsigned long long)lim);
}

/* -------------------------------------------------------------- running */

struct child {
    pid_t pid;
    int fd;                 /* read end of its pipe, -1 once at EOF */
    int done;               /* REC_END seen */
    uint64_t st[ST_COUNT];
    uint64_t prog_req, prog_err;
    unsigned char part[sizeof(struct rec)];
    size_t part_len;        /* a record split across reads */
};

static volatile sig_atomic_t g_signals;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
    g_signals++;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll/epoll_wait return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void handle_rec(struct child *ch, struct hist *h, const struct rec *r)
{
    switch (r->type) {
    case REC_PROGRESS:
        if (r->idx == 0)
            ch->prog_req = r->val;
        else
            ch->prog_err = r->val;
        break;
    case REC_STAT:
        if (r->idx < ST_COUNT)
            ch->st[r->idx] = r->val;
        break;
    case REC_HIST:
        hist_add_bucket(h, r->idx, r->val);
        break;
    case REC_HMIN:
        hist_merge_minmax(h, r->val, 0);
        break;
    case REC_HMAX:
        hist_merge_minmax(h, UINT64_MAX, r->val);
        break;
    case REC_END:
        ch->done = 1;
        break;
    default:
        break;
    }
}

static void read_child(struct child *ch, struct hist *h)
{
    unsigned char buf[4096 + sizeof(struct rec)];
    memcpy(buf, ch->part, ch->part_len);
    ssize_t n = read(ch->fd, buf + ch->part_len, 4096);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close(ch->fd);
        ch->fd = -1;
        return;
    }
    size_t total = ch->part_len + (size_t)n, off = 0;
    for (; off + sizeof(struct rec) <= total; off += sizeof(struct rec)) {
        struct rec r;
        memcpy(&r, buf + off, sizeof(r));
        handle_rec(ch, h, &r);
    }
    ch->part_len = total - off;
    memcpy(ch->part, buf + off, ch->part_len);
}

static void kill_children(struct child *ch, long n, int sig)
{
    for (long i = 0; i < n; i++)
        if (ch[i].pid > 0 && ch[i].fd >= 0)
            kill(ch[i].pid, sig);
}

static void progress_line(const struct child *ch, long n, double elapsed, uint64_t *last)
{
    uint64_t req = 0, err = 0;
    for (long i = 0; i < n; i++) {
        req += ch[i].prog_req;
        err += ch[i].prog_err;
    }
    fprintf(stderr, "\r\033[K[%5.0fs] %llu requests, %llu req/s, %llu errors",
            elapsed, (unsigned long long)req, (unsigned long long)(req - *last),
            (unsigned long long)err);
    *last = req;
}

/* ---------------------------------------------------------------- output */

struct summary {
    uint64_t st[ST_COUNT];
    uint64_t errors, answered, reconnects;
    int exit_status, incomplete; /* incomplete: a client died or never ran */
    double secs, rps, bps;
    uint64_t lat[6]; /* min p50 p90 p99 p99.9 max */
    double mean, stdev;
    uint64_t cmin, cmax;
    double cmean, spread;
};

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const struct config *cfg, const struct summary *s,
                       const struct child *ch, int interrupted, int died)
{
    const uint64_t *st = s->st;
    printf("{\"url\": ");
    json_str(cfg->url);
    printf(", \"clients\": %ld, \"conns_per_client\": %ld, \"keep_alive\": %s, "
           "\"pipeline\": %ld, \"duration_sec\": %.6f, ",
           cfg->clients, cfg->conns, cfg->keepalive ? "true" : "false",
           cfg->pipeline, s->secs);
    printf("\"requests\": %llu, \"ok\": %llu, \"status_4xx\": %llu, \"status_5xx\": %llu, "
           "\"answered\": %llu, \"cancelled\": %llu, ",
           (unsigned long long)st[ST_REQUESTS], (unsigned long long)st[ST_OK],
           (unsigned long long)st[ST_4XX], (unsigned long long)st[ST_5XX],
           (unsigned long long)s->answered, (unsigned long long)st[ST_CANCELLED]);
    printf("\"errors\": {\"total\": %llu, \"refused\": %llu, \"reset\": %llu, "
           "\"timeout\": %llu, \"malformed\": %llu, \"other\": %llu, \"unanswered\": %llu, "
           "\"tls\": %llu}, ",
           (unsigned long long)s->errors, (unsigned long long)st[ST_ERR_REFUSED],
           (unsigned long long)st[ST_ERR_RESET], (unsigned long long)st[ST_ERR_TIMEOUT],
           (unsigned long long)st[ST_ERR_MALFORMED], (unsigned long long)st[ST_ERR_OTHER],
           (unsigned long long)st[ST_ERR_UNANSWERED], (unsigned long long)st[ST_ERR_TLS]);
    if (cfg->tls)
        printf("\"tls\": {\"handshakes\": %llu, \"resumed\": %llu}, ",
               (unsigned long long)st[ST_TLS_HANDSHAKES], (unsigned long long)st[ST_TLS_RESUMED]);
    printf("\"connections\": {\"opened\": %llu, \"failed\": %llu, \"timed_out\": %llu, "
           "\"never_completed\": %llu, \"reconnects\": {\"total\": %llu, "
           "\"server_closed\": %llu, \"after_error\": %llu}}, \"bytes\": %llu, ",
           (unsigned long long)st[ST_CONN_OPENED], (unsigned long long)st[ST_CONN_FAILED],
           (unsigned long long)st[ST_CONN_TIMEOUT], (unsigned long long)st[ST_CONN_PENDING],
           (unsigned long long)s->reconnects, (unsigned long long)st[ST_RECONN_CLOSED],
           (unsigned long long)st[ST_RECONN_ERROR], (unsigned long long)st[ST_BYTES]);
    printf("\"requests_per_sec\": %.2f, \"bytes_per_sec\": %.2f, ", s->rps, s->bps);
    printf("\"latency_us\": {\"min\": %llu, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, "
           "\"p999\": %llu, \"max\": %llu, \"mean\": %.1f, \"stdev\": %.1f}, ",
           (unsigned long long)s->lat[0], (unsigned long long)s->lat[1],
           (unsigned long long)s->lat[2], (unsigned long long)s->lat[3],
           (unsigned long long)s->lat[4], (unsigned long long)s->lat[5], s->mean, s->stdev);
    printf("\"per_client\": {\"requests_min\": %llu, \"requests_max\": %llu, "
           "\"requests_mean\": %.1f, \"spread_pct\": %.1f, \"requests\": [",
           (unsigned long long)s->cmin, (unsigned long long)s->cmax, s->cmean, s->spread);
    for (long i = 0; i < cfg->clients; i++)
        printf("%s%llu", i ? ", " : "", (unsigned long long)ch[i].st[ST_REQUESTS]);
    printf("]}, \"interrupted\": %s, \"clients_died\": %d, \"exit_status\": %d}\n",
           interrupted ? "true" : "false", died, s->exit_status);
}

static void print_human(const struct config *cfg, const struct summary *s, int interrupted,
                        int died)
{
    const uint64_t *st = s->st;
    printf("forkload %s: %s\n", FORKLOAD_VERSION, cfg->url);
    printf("  %ld client%s x %ld connection%s, %s", cfg->clients, cfg->clients == 1 ? "" : "s",
           cfg->conns, cfg->conns == 1 ? "" : "s",
           cfg->hold > 0 ? "held open" : cfg->keepalive ? "keep-alive" : "new connection per request");
    if (cfg->pipeline > 1)
        printf(", pipeline %ld", cfg->pipeline);
    if (cfg->hold > 0)
        printf(" for %.3g s", cfg->hold);
    printf("%s\n\n", interrupted ? "  (interrupted)" : "");
    printf("  Requests:     %llu total: %llu ok (2xx/3xx), %llu 4xx, %llu 5xx, %llu errors\n",
           (unsigned long long)st[ST_REQUESTS], (unsigned long long)st[ST_OK],
           (unsigned long long)st[ST_4XX], (unsigned long long)st[ST_5XX],
           (unsigned long long)s->errors);
    printf("  Errors:       refused %llu, reset %llu, timeout %llu, malformed %llu, other %llu, "
           "unanswered %llu\n",
           (unsigned long long)st[ST_ERR_REFUSED], (unsigned long long)st[ST_ERR_RESET],
           (unsigned long long)st[ST_ERR_TIMEOUT], (unsigned long long)st[ST_ERR_MALFORMED],
           (unsigned long long)st[ST_ERR_OTHER], (unsigned long long)st[ST_ERR_UNANSWERED]);
    if (cfg->tls)
        printf("  TLS:          %llu handshakes (%llu resumed), %llu failed (errors: tls)\n",
               (unsigned long long)st[ST_TLS_HANDSHAKES], (unsigned long long)st[ST_TLS_RESUMED],
               (unsigned long long)st[ST_ERR_TLS]);
    if (st[ST_CANCELLED])
        printf("  Cancelled:    %llu requests in flight when interrupted (not counted)\n",
               (unsigned long long)st[ST_CANCELLED]);
    printf("  Connections:  %llu opened, %llu failed (%llu timed out), %llu never completed\n",
           (unsigned long long)st[ST_CONN_OPENED], (unsigned long long)st[ST_CONN_FAILED],
           (unsigned long long)st[ST_CONN_TIMEOUT], (unsigned long long)st[ST_CONN_PENDING]);
    if (cfg->keepalive || cfg->hold > 0)
        printf("  Reconnects:   %llu beyond the %llu asked for (%llu: server closed the "
               "keep-alive connection, %llu: after an error)\n",
               (unsigned long long)s->reconnects,
               (unsigned long long)cfg->clients * (unsigned long long)cfg->conns,
               (unsigned long long)st[ST_RECONN_CLOSED], (unsigned long long)st[ST_RECONN_ERROR]);
    printf("  Duration:     %.3f s\n", s->secs);
    printf("  Throughput:   %.2f req/s (answered), %.2f MB/s (%llu bytes)\n", s->rps,
           s->bps / 1e6, (unsigned long long)st[ST_BYTES]);
    printf("  Latency (us): min %llu, p50 %llu, p90 %llu, p99 %llu, p99.9 %llu, max %llu "
           "(mean %.1f, stdev %.1f)\n",
           (unsigned long long)s->lat[0], (unsigned long long)s->lat[1],
           (unsigned long long)s->lat[2], (unsigned long long)s->lat[3],
           (unsigned long long)s->lat[4], (unsigned long long)s->lat[5], s->mean, s->stdev);
    printf("  Per client:   requests min %llu, max %llu, mean %.1f (spread %.1f%%)\n",
           (unsigned long long)s->cmin, (unsigned long long)s->cmax, s->cmean, s->spread);
    if (died)
        printf("  WARNING:      %d client process%s died; their counts are missing\n", died,
               died == 1 ? "" : "es");
    if (s->exit_status == 0)
        printf("  Result:       all %llu requests answered (exit 0)\n",
               (unsigned long long)s->answered);
    else if (s->incomplete)
        printf("  Result:       FAILED: not every client process reported (exit %d)\n",
               s->exit_status);
    else if (s->errors == 0)
        printf("  Result:       FAILED: no request answered (exit %d)\n", s->exit_status);
    else
        printf("  Result:       FAILED: %llu of %llu requests failed (exit %d)\n",
               (unsigned long long)s->errors, (unsigned long long)st[ST_REQUESTS],
               s->exit_status);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "clients", required_argument, NULL, 'C' },
        { "max-clients", required_argument, NULL, 'C' },
        { "conns", required_argument, NULL, 'c' },
        { "max-conns", required_argument, NULL, 'c' },
        { "requests", required_argument, NULL, 'n' },
        { "duration", required_argument, NULL, 'd' },
        { "keep-alive", no_argument, NULL, 'k' },
        { "pipeline", required_argument, NULL, 'p' },
        { "method", required_argument, NULL, 'm' },
        { "header", required_argument, NULL, 'H' },
        { "body", required_argument, NULL, 'b' },
        { "timeout", required_argument, NULL, 't' },
        { "hold", required_argument, NULL, 'o' },
        { "json", no_argument, NULL, 'j' },
        { "cacert", required_argument, NULL, 1500 },
        { "insecure", no_argument, NULL, 1501 },
        { "tls-resume", no_argument, NULL, 1502 },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.clients = 1;
    cfg.conns = 10;
    cfg.requests = 1;
    cfg.pipeline = 1;
    cfg.timeout = 10;
    const char *method = "GET", *body_path = NULL;
    char **headers = NULL;
    int nheaders = 0, have_requests = 0;

    opterr = 0; /* our own one-line messages */
    int opt, longidx;
    while ((opt = getopt_long(argc, argv, ":kH:hV", opts, &longidx)) != -1) {
        switch (opt) {
        case 'C': cfg.clients = parse_count("--clients", optarg, MAX_CLIENTS); break;
        case 'c': cfg.conns = parse_count("--conns", optarg, 1000000); break;
        case 'n':
            cfg.requests = parse_count("--requests", optarg, 1000000000L);
            have_requests = 1;
            break;
        case 'd': cfg.duration = parse_secs("--duration", optarg, 86400); break;
        case 'k': cfg.keepalive = 1; break;
        case 'p': cfg.pipeline = parse_count("--pipeline", optarg, MAX_PIPELINE); break;
        case 'm':
            if (!is_token(optarg, strlen(optarg)))
                usage_error("--method: not a valid method: '%s'", optarg);
            method = optarg;
            break;
        case 'H': {
            const char *colon = strchr(optarg, ':');
            if (!colon || !is_token(optarg, (size_t)(colon - optarg)) ||
                strpbrk(optarg, "\r\n"))
                usage_error("--header: want 'Name: value', got '%s'", optarg);
            char **nh = realloc(headers, sizeof(*headers) * (size_t)(nheaders + 1));
            if (!nh) {
                fputs("forkload: out of memory\n", stderr);
                return 1;
            }
            headers = nh;
            headers[nheaders++] = optarg;
            break;
        }
        case 'b': body_path = optarg; break;
        case 't': cfg.timeout = parse_secs("--timeout", optarg, 3600); break;
        case 'o': cfg.hold = parse_secs("--hold", optarg, 86400); break;
        case 'j': cfg.json = 1; break;
        case 1500: cfg.cacert = optarg; break;
        case 1501: cfg.insecure = 1; break;
        case 1502: cfg.tls_resume = 1; break;
        case 'h':
            fputs(help_text, stdout);
            free(headers);
            return 0;
        case 'V':
            printf("forkload %s\n", FORKLOAD_VERSION);
            free(headers);
            return 0;
        case ':':
            usage_error("%s: missing value (see --help)", argv[optind - 1]);
        default:
            if (optopt)
                usage_error("unknown option '-%c' (see --help)", optopt);
            usage_error("unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        usage_error("missing URL (see --help)");
    if (optind + 1 < argc)
        usage_error("unexpected argument '%s' (only one URL)", argv[optind + 1]);
    if (cfg.duration > 0 && have_requests)
        usage_error("--duration and --requests exclude each other");
    if (cfg.hold > 0 && cfg.duration > 0)
        usage_error("--hold and --duration exclude each other");
    if (cfg.pipeline > 1)
        cfg.keepalive = 1;
    cfg.url = argv[optind];

    struct url u;
    parse_url(cfg.url, &u);
    cfg.tls = u.tls;
    if (!cfg.tls && (cfg.cacert || cfg.insecure || cfg.tls_resume))
        usage_error("%s: only for https:// URLs", cfg.cacert ? "--cacert" : cfg.insecure ?
                    "--insecure" : "--tls-resume");
    if (cfg.cacert && cfg.insecure)
        usage_error("--cacert and --insecure exclude each other");
    check_fd_limit(&cfg);
    cfg.is_head = strcmp(method, "HEAD") == 0;
    {
        char hh[300];
        int default_port = strcmp(u.port, u.tls ? "443" : "80") == 0;
        snprintf(hh, sizeof(hh), "%s%s%s%s%s", u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "",
                 default_port ? "" : ":", default_port ? "" : u.port);
        cfg.host_header = strdup(hh);
    }
    size_t body_len = 0;
    char *body = body_path ? read_body(body_path, &body_len) : NULL;
    if (!cfg.host_header) {
        fputs("forkload: out of memory\n", stderr);
        return 1;
    }
    build_request(&cfg, method, &u, headers, nheaders, body, body_len);
    free(body);
    free(headers);
    if (cfg.tls) {
        unsigned char a6[16];
        tls_setup(&cfg, u.host, u.ipv6 || inet_pton(AF_INET, u.host, a6) == 1);
    }
    resolve(&cfg, &u);

    /* Block the stop signals across fork so a child cannot be killed by a
     * Ctrl-C that arrives before it has its own handler. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    install_signals();
    sigprocmask(SIG_BLOCK, &block, &old);

    struct child *ch = calloc((size_t)cfg.clients, sizeof(*ch));
    struct hist *h = malloc(sizeof(*h));
    if (!ch || !h) {
        fputs("forkload: out of memory\n", stderr);
        return 1;
    }
    hist_init(h);
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    uint64_t start = now_ns();
    long started = 0;
    int fork_failed = 0;
    for (long i = 0; i < cfg.clients; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            fprintf(stderr, "forkload: pipe: %s\n", strerror(errno));
            fork_failed = 1;
            break;
        }
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "forkload: fork: %s\n", strerror(errno));
            close(p[0]);
            close(p[1]);
            fork_failed = 1;
            break;
        }
        if (pid == 0) {
            /* Die with the parent rather than run on as an orphan. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            close(p[0]);
            for (long j = 0; j < i; j++)
                close(ch[j].fd);
            sigprocmask(SIG_SETMASK, &old, NULL);
            int rc = client_run(&cfg, start, p[1]);
            close(p[1]);
            free(ch);
            free(h);
            free(cfg.req);
            free(cfg.reqs);
            free(cfg.host_header);
            free(cfg.sni);
            SSL_CTX_free(cfg.ssl_ctx);
            exit(rc == 0 ? 0 : 1);
        }
        close(p[1]);
        ch[i].pid = pid;
        ch[i].fd = p[0];
        started++;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (fork_failed)
        kill_children(ch, started, SIGINT);

    /* Collect until every pipe is at EOF. */
    struct pollfd *pfd = calloc((size_t)started + 1, sizeof(*pfd));
    long *map = calloc((size_t)started + 1, sizeof(*map));
    int tty = isatty(2);
    int forwarded = 0, progress_shown = 0;
    uint64_t next_tick = start + 1000000000u, last_req = 0;
    for (;;) {
        if (g_signals > forwarded) {
            /* First Ctrl-C: ask clients to stop and report; second: kill. */
            kill_children(ch, started, forwarded == 0 ? SIGINT : SIGKILL);
            forwarded = g_signals;
        }
        long np = 0;
        for (long i = 0; i < started; i++)
            if (ch[i].fd >= 0) {
                pfd[np].fd = ch[i].fd;
                pfd[np].events = POLLIN;
                map[np++] = i;
            }
        if (np == 0)
            break;
        uint64_t now = now_ns();
        int ms = next_tick > now ? (int)((next_tick - now) / 1000000 + 1) : 0;
        int n = poll(pfd, (nfds_t)np, ms);
        if (n < 0 && errno != EINTR)
            break;
        for (long k = 0; n > 0 && k < np; k++)
            if (pfd[k].revents)
                read_child(&ch[map[k]], h);
        now = now_ns();
        if (now >= next_tick) {
            double el = (double)(now - start) / 1e9;
            if (tty && el >= 2.0) {
                progress_line(ch, started, el, &last_req);
                progress_shown = 1;
            } else {
                uint64_t r = 0;
                for (long i = 0; i < started; i++)
                    r += ch[i].prog_req;
                last_req = r;
            }
            next_tick += 1000000000u;
        }
    }
    if (progress_shown)
        fputs("\r\033[K", stderr);
    free(pfd);
    free(map);

    /* Reap every client: no zombies, and notice the ones that crashed. */
    int died = 0;
    for (long i = 0; i < started; i++) {
        int status;
        while (waitpid(ch[i].pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!ch[i].done) {
            died++;
            if (WIFSIGNALED(status))
                fprintf(stderr, "forkload: client %ld (pid %d) died: signal %d\n", i,
                        (int)ch[i].pid, WTERMSIG(status));
            else
                fprintf(stderr, "forkload: client %ld (pid %d) exited with status %d "
                        "without a report\n", i, (int)ch[i].pid, WEXITSTATUS(status));
        }
    }

    struct summary s;
    memset(&s, 0, sizeof(s));
    uint64_t end = start;
    s.cmin = UINT64_MAX;
    for (long i = 0; i < started; i++) {
        for (int k = 0; k < ST_COUNT; k++)
            if (k != ST_END_NS)
                s.st[k] += ch[i].st[k];
        if (ch[i].st[ST_END_NS] > end)
            end = ch[i].st[ST_END_NS];
        uint64_t r = ch[i].st[ST_REQUESTS];
        if (r < s.cmin)
            s.cmin = r;
        if (r > s.cmax)
            s.cmax = r;
        s.cmean += (double)r;
    }
    if (end == start)
        end = now_ns();
    if (started == 0)
        s.cmin = 0;
    s.cmean = started ? s.cmean / (double)started : 0;
    s.spread = s.cmean > 0 ? 100.0 * (double)(s.cmax - s.cmin) / s.cmean : 0;
    for (int k = ST_ERR_FIRST; k <= ST_ERR_LAST; k++)
        s.errors += s.st[k];
    s.answered = s.st[ST_OK] + s.st[ST_4XX] + s.st[ST_5XX];
    s.reconnects = s.st[ST_RECONN_CLOSED] + s.st[ST_RECONN_ERROR];
    s.secs = (double)(end - start) / 1e9;
    /* Only answers count as throughput: failures are not work done. */
    s.rps = s.secs > 0 ? (double)s.answered / s.secs : 0;
    s.bps = s.secs > 0 ? (double)s.st[ST_BYTES] / s.secs : 0;
    static const double pct[] = { 50, 90, 99, 99.9 };
    s.lat[0] = h->total ? h->min : 0;
    for (int k = 0; k < 4; k++)
        s.lat[k + 1] = hist_percentile(h, pct[k]);
    s.lat[5] = h->total ? h->max : 0;
    s.mean = hist_mean(h);
    s.stdev = hist_stdev(h);

    /* Exit status: 1 when anything failed at the transport level (4xx/5xx
     * are answers), when nothing was answered, or when a client's counts
     * are missing. */
    s.incomplete = died || fork_failed;
    s.exit_status = s.incomplete || s.errors > 0 || s.answered == 0 ? 1 : 0;
    int interrupted = g_signals > 0;
    if (cfg.json)
        print_json(&cfg, &s, ch, interrupted, died);
    else
        print_human(&cfg, &s, interrupted, died);
    fflush(stdout);

    free(ch);
    free(h);
    free(cfg.req);
    free(cfg.reqs);
    free(cfg.host_header);
    free(cfg.sni);
    SSL_CTX_free(cfg.ssl_ctx);
    return s.exit_status;
}
