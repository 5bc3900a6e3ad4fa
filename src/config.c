/* config.c - options, defaults, validation, usage text. */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_parse.h"
#include "log.h"
#include "mime.h"
#include "module.h"
#include "owned_hdr.h"
#include "net.h"

struct config cfg;

static const char usage_text[] =
    "usage: forkhttpd [options]\n"
    "\n"
    "A small, strict HTTP/1.1 server; the \"Let's Build A Web Server\" tutorial grown up.\n"
    "Every option applies to every --model unless it names the models it applies to.\n"
    "\n"
    "Listening\n"
    "  --host H               address to bind (default 0.0.0.0; '::' for IPv6)\n"
    "  --port P               TCP port (default 8888; 0 = any free port, printed at start)\n"
    "  --backlog N            listen queue length (default 1024)\n"
    "  --listen H:P[/tls]     one more listener, plain or HTTPS (repeatable; [::1]:P for IPv6)\n"
    "\n"
    "Behind a balancer (docs/deploy.md)\n"
    "  --listen H:P/proxy     a listener that expects a PROXY protocol header (v1 or v2)\n"
    "                         first, from a --trusted-proxy (also H:P/tls/proxy)\n"
    "  --proxy-protocol       ...the --host/--port listener expects it too\n"
    "  --trusted-proxy CIDR   a balancer's address or network (repeatable): its PROXY\n"
    "                         headers and forwarding headers name the client\n"
    "  --forwarded-header H   the header trusted proxies set: x-forwarded-for (default)\n"
    "                         or forwarded (RFC 7239); the other one is ignored\n"
    "  --health PATH          answer PATH with 200, or 503 while draining\n"
    "  --drain S              prefork, event: after SIGTERM, --health says 503 for S\n"
    "                         seconds while everything else is served, then the\n"
    "                         graceful stop begins (default 0)\n"
    "\n"
    "HTTPS (docs/tls.md)\n"
    "  --tls-cert FILE        PEM certificate (leaf, then intermediates): --host/--port\n"
    "                         speaks HTTPS; repeatable in pairs, SNI picks, the first is the default\n"
    "  --tls-key FILE         the PEM private key of the --tls-cert before it\n"
    "  --tls-protocols LIST   TLSv1.2,TLSv1.3 (the default; older ones are refused)\n"
    "  --tls-ciphers LIST     TLS 1.2 suites, OpenSSL syntax (default: Mozilla intermediate,\n"
    "                         forward-secret AEAD only)\n"
    "  --redirect-https       plain listeners answer 308 to the first HTTPS listener\n"
    "\n"
    "Concurrency\n"
    "  --model M              iterative | fork | prefork | event (default event)\n"
    "  --workers N            worker processes for prefork/event (default: CPUs)\n"
    "  --max-workers N        prefork: grow the pool up to N (default 256)\n"
    "  --max-conns N          event: connections per worker (default: the descriptor\n"
    "                         limit, raised to its hard limit at start, less a reserve);\n"
    "                         when full, the longest-idle keep-alive one is closed to make\n"
    "                         room; fork: children (default 4096); iterative, prefork: ignored\n"
    "  --grace S              graceful stop: seconds to finish requests (default 10)\n"
    "  --accept exclusive|reuseport  event: one shared listener woken with EPOLLEXCLUSIVE\n"
    "                         (default), or a SO_REUSEPORT listener per worker\n"
    "  --lesson BUG           fork: deliberately re-introduce one bug of the tutorial, to\n"
    "                         see it: keep-dup-fd, no-reap, reap-once or no-eintr-retry\n"
    "                         (docs/tutorial.md; for teaching only, off by default)\n"
    "\n"
    "Content\n"
    "  --root DIR             document root for static files (default .)\n"
    "  --autoindex            list directories that have no index.html\n"
    "  --allow-dotfiles       serve (and list) files and directories whose name starts\n"
    "                         with '.' (default: 404, except under /.well-known/)\n"
    "  --cgi PREFIX=DIR       run executables in DIR under URL PREFIX (CGI/1.1)\n"
    "  --app [PREFIX=]FILE.so:SYMBOL  mount a C app (default prefix /)\n"
    "  --status PREFIX        a status page (text, or JSON with ?json), loopback clients only\n"
    "  --status-public        ...for any client\n"
    "  --wsgi [PREFIX=]MODULE:CALLABLE  mount a Python WSGI app (default prefix /)\n"
    "  --pythonpath DIR       prepend DIR to sys.path for --wsgi (repeatable)\n"
    "  --chdir DIR            change to DIR before importing --wsgi apps\n"
    "  --preload              import/init apps once before forking workers\n"
    "  --threads N            event: threads per worker that run thread-safe apps and\n"
    "                         --wsgi (default 64); 0: apps run inside the event loop\n"
    "  --app-queue N          event: calls that wait per worker when every thread is\n"
    "                         busy, then 503 + Retry-After (default 256)\n"
    "  --app-timeout S        event with --threads: a call running longer answers 504\n"
    "                         (default 30); the thread is counted as stuck\n"
    "  --app-stuck N          event: the master recycles a worker with N stuck calls\n"
    "                         (default: half of --threads, at least 1)\n"
    "  --app-inline-us US     event: a thread-safe app whose calls take under US µs\n"
    "                         runs inside the loop until one takes longer (default\n"
    "                         250); 0: always on a thread\n"
    "\n"
    "Static sites (docs/static.md)\n"
    "  --precompressed        send file.br / file.gz next to file to clients that accept them\n"
    "  --compress             gzip/brotli text files on the fly, kept in the file cache\n"
    "  --compress-min BYTES   smaller files are sent as they are (default 256)\n"
    "  --compress-cache BYTES compressed bytes kept per process (default 16777216)\n"
    "  --compress-gateways on|off  with --compress, gzip app, CGI and WSGI text responses\n"
    "                         too, as they stream (default on; a response opts out with\n"
    "                         Cache-Control: no-transform)\n"
    "  --header [PREFIX=]'Name: value'  add a header to static files under PREFIX\n"
    "                         (default /; repeatable)\n"
    "  --error-page CODE=PATH serve the root's PATH for the static files' errors CODE\n"
    "                         (4xx, 5xx), with that status\n"
    "  --fallback PATH        the root's PATH (an SPA's /index.html) with 200 for a GET/HEAD\n"
    "                         of a missing file whose extension is not a known type\n"
    "  --mime EXT=TYPE        add or override a type (over /etc/mime.types, the built-ins)\n"
    "  --default-type TYPE    files with no known extension (default application/octet-stream)\n"
    "\n"
    "Limits and timeouts (seconds may have decimals)\n"
    "  --header-timeout S     time to receive a request head (default 10)\n"
    "  --body-timeout S       max silence while receiving a body (default 30)\n"
    "  --keepalive-timeout S  idle time between requests (default 5)\n"
    "  --write-timeout S      max time a client may stall reading (default 30)\n"
    "  --max-body BYTES       largest body a handler reads (CGI, apps: spooled to disk),\n"
    "                         else 413 (default 1073741824)\n"
    "  --max-unread-body B    largest body nobody reads (static files, errors), else 413\n"
    "                         (default 1048576; --max-body alone sets both)\n"
    "  --spool-budget BYTES   spooled request bodies held at once per process; past it 503 +\n"
    "                         Retry-After (default 2147483648)\n"
    "  --min-rate BYTES       a head or body must average this many bytes/s after its first\n"
    "                         2 s (0.5 s while the prefork pool is full), else 408\n"
    "                         (default 500; 0: off)\n"
    "  --max-header-size B    largest request head, else 431 (default 16384)\n"
    "  --max-line B           longest request line, else 414 (default 8192)\n"
    "  --max-headers N        most header fields, else 431 (default 100)\n"
    "  --max-keepalive-requests N  requests per connection (default 10000)\n"
    "  --cgi-timeout S        time a CGI script has to answer (default 60)\n"
    "  --cgi-max N            concurrent CGI scripts per worker process, else 503 (default 32)\n"
    "\n"
    "Running as a service\n"
    "  --user NAME            after binding, drop root privileges to NAME (and its group)\n"
    "  --group NAME           ...and to this group\n"
    "  --allow-root           serve as root without a warning\n"
    "  --pid-file FILE        write the master's PID there (removed at exit)\n"
    "  --error-log FILE       send stderr (time-stamped log lines, CGI/app stderr) to FILE;\n"
    "                         reopened on SIGUSR1\n"
    "  --unix PATH            listen on a UNIX socket instead of --host/--port; with --user\n"
    "                         it is owned by --user/--group; removed at exit\n"
    "  --unix-mode MODE       permissions of the --unix socket, octal (default 0660)\n"
    "  (systemd socket activation: with LISTEN_FDS=1 the inherited fd 3 is the listener)\n"
    "\n"
    "Logging\n"
    "  --access-log FILE|-    Combined Log Format access log ('-' = stdout)\n"
    "  --access-log-format F  combined (default) | tls: combined, then the TLS protocol\n"
    "                         and cipher (\"-\" on plain HTTP; docs/tls.md)\n"
    "  --log-level LEVEL      error, warn (bad exchanges: timeouts, 502s), info (default:\n"
    "                         start, stop, restart) or debug (= --verbose)\n"
    "  --verbose              narrate accept/fork/reap and request/response heads\n"
    "  --quiet                only errors on stderr (= --log-level error)\n"
    "  -h, --help, --version\n"
    "\n"
    "Signals (to the PID in --pid-file, or the process started)\n"
    "  TERM, INT              graceful stop: finish in-flight requests (up to --grace), exit 0\n"
    "  HUP                    prefork, event: graceful restart of the workers (iterative,\n"
    "                         fork: ignored)\n"
    "  USR1                   reopen --access-log and --error-log (after rotating them)\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* one line, whatever the argument held */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "forkhttpd: %s (try --help)\n", msg);
    exit(2);
}

static long long parse_int(const char *opt, const char *s, long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max || s[0] == ' ' || s[0] == '+') {
        char range[64];
        snprintf(range, sizeof range, "%lld..%lld", min, max);
        fprintf(stderr, "forkhttpd: %s: not a number in %s: '%s'\n", opt, range, s);
        exit(2);
    }
    return v;
}

/* Seconds (decimals allowed) -> milliseconds. */
static int parse_seconds(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 86400) {
        fprintf(stderr, "forkhttpd: %s: not a number of seconds in (0, 86400]: '%s'\n", opt, s);
        exit(2);
    }
    int ms = (int)(v * 1000.0 + 0.5);
    return ms > 0 ? ms : 1;
}

/* "/x/y/" -> "/x/y"; must start with '/'. */
static char *clean_prefix(const char *opt, const char *p, size_t len)
{
    if (len == 0 || p[0] != '/')
        usage_error("%s: prefix must start with '/': '%s'", opt, p);
    while (len > 1 && p[len - 1] == '/')
        len--;
    char *s = strndup(p, len);
    if (!s)
        die(2, "out of memory");
    return s;
}

static struct mount *add_mount(const char *opt)
{
    if (cfg.nmounts >= FH_MAX_MOUNTS)
        usage_error("%s: too many mounts (at most %d)", opt, FH_MAX_MOUNTS);
    struct mount *m = &cfg.mounts[cfg.nmounts++];
    memset(m, 0, sizeof *m);
    m->dir_fd = -1;
    return m;
}

/* Resolve a directory given on the command line; exit 2 if it is not one. */
static char *resolve_dir(const char *opt, const char *dir)
{
    char *real = realpath(dir, NULL);
    struct stat st;
    if (!real || stat(real, &st) < 0) {
        fprintf(stderr, "forkhttpd: %s: %s: %s\n", opt, dir, strerror(errno));
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "forkhttpd: %s: %s: not a directory\n", opt, dir);
        exit(2);
    }
    return real;
}

static void parse_cgi(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        usage_error("--cgi: expected PREFIX=DIR: '%s'", arg);
    struct mount *m = add_mount("--cgi");
    m->kind = MOUNT_CGI;
    m->ops = &mount_ops_cgi;
    m->prefix = clean_prefix("--cgi", arg, (size_t)(eq - arg));
    m->prefix_len = strlen(m->prefix);
    m->dir = resolve_dir("--cgi", eq + 1);
}

/* --wsgi [PREFIX=]module:callable mounts build/wsgi.so (an ordinary app on the
 * public interface, docs/wsgi.md), found next to the running binary; the
 * module:callable is the mount's argument (fh_mount_arg). The rest of the
 * argument (model, paths) is appended by wsgi_finish() once every flag is known. */
static void parse_wsgi(const char *arg)
{
    const char *spec = arg, *eq = strchr(arg, '=');
    if (eq) {
        if (arg[0] != '/')
            usage_error("--wsgi: PREFIX must start with '/': '%s'", arg);
        spec = eq + 1;
    }
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1] || strpbrk(spec, "\n/= "))
        usage_error("--wsgi: expected [PREFIX=]MODULE:CALLABLE: '%s'", arg);
    char exe[PATH_MAX];
    if (module_path("wsgi.so", exe, sizeof exe) < 0)
        die(2, "--wsgi: cannot find the server's own binary (/proc/self/exe):");
    if (access(exe, R_OK) != 0) {
        fprintf(stderr,
                "forkhttpd: --wsgi: WSGI support is not built: %s: %s (it needs Debian's "
                "libpython3.11-dev; install it and run make)\n",
                exe, strerror(errno));
        exit(2);
    }
    struct mount *m = add_mount("--wsgi");
    m->kind = MOUNT_APP;
    m->ops = &mount_ops_app;
    m->prefix = eq ? clean_prefix("--wsgi", arg, (size_t)(eq - arg)) : strdup("/");
    m->prefix_len = m->prefix ? strlen(m->prefix) : 0;
    m->file = strdup(exe);
    m->symbol = strdup("app");
    m->arg = strdup(spec);
    size_t ll = strlen(spec) + 6;
    m->label = malloc(ll);
    if (!m->prefix || !m->file || !m->symbol || !m->arg || !m->label)
        die(2, "out of memory");
    snprintf(m->label, ll, "wsgi %s", spec);
}

/* A path inside the static root for --error-page and --fallback: "/x/y"
 * (plain: no '..', '%', '//', no dotfile segment), returned without its
 * leading '/'. */
static char *root_path(const char *opt, const char *arg, const char *path)
{
    char canon[1024];
    size_t len = strlen(path);
    int cn = len ? http_normalize_path(path, len, canon, sizeof canon) : -1;
    if (cn < 2 || (size_t)cn != len || memcmp(canon, path, len) != 0 || strpbrk(path, "%?#") ||
        path[len - 1] == '/' || strstr(path, "/."))
        usage_error("%s: expected a file's path in the root, like /index.html: '%s'", opt, arg);
    char *s = strdup(path + 1);
    if (!s)
        die(2, "out of memory");
    return s;
}

static void parse_error_page(const char *arg)
{
    const char *eq = strchr(arg, '=');
    char code[8];
    if (!eq || eq - arg != 3)
        usage_error("--error-page: expected CODE=PATH (CODE 400..599): '%s'", arg);
    snprintf(code, sizeof code, "%.3s", arg);
    char *end;
    long st = strtol(code, &end, 10);
    if (*end || st < 400 || st > 599 || code[0] == '+' || code[0] == '-' || code[0] == ' ')
        usage_error("--error-page: expected CODE=PATH (CODE 400..599): '%s'", arg);
    char *path = root_path("--error-page", arg, eq + 1);
    struct error_page *e = NULL;
    for (int i = 0; i < cfg.nerror_pages; i++)
        if (cfg.error_pages[i].status == (int)st)
            e = &cfg.error_pages[i]; /* the last one for a code wins */
    if (!e) {
        struct error_page *n = realloc(cfg.error_pages, (size_t)(cfg.nerror_pages + 1) * sizeof *n);
        if (!n)
            die(2, "out of memory");
        cfg.error_pages = n;
        e = &n[cfg.nerror_pages++];
        e->path = NULL;
    }
    free(e->path);
    e->status = (int)st;
    e->path = path;
}

/* The fields --header may not set: the core's own (owned_hdr.c), and those
 * the static handler writes from the file (docs/static.md). */
static int static_owned(const char *name, size_t len)
{
    static const char *const mine[] = {
        "Content-Length", "Content-Type", "Content-Encoding", "Content-Range", "ETag",
        "Last-Modified", "Accept-Ranges", "Vary", "Allow", "Location",
    };
    if (owned_hdr_find(name, len) >= 0)
        return 1;
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++)
        if (strlen(mine[i]) == len && strncasecmp(name, mine[i], len) == 0)
            return 1;
    return 0;
}

static void parse_static_header(const char *arg)
{
    const char *spec = arg, *prefix = "/";
    size_t plen = 1;
    const char *colon = strchr(arg, ':');
    const char *eq = strchr(arg, '=');
    if (arg[0] == '/' && eq && (!colon || eq < colon)) {
        prefix = arg;
        plen = (size_t)(eq - arg);
        spec = eq + 1;
    }
    colon = strchr(spec, ':');
    if (!colon || colon == spec)
        usage_error("--header: expected [PREFIX=]'Name: value': '%s'", arg);
    size_t nlen = (size_t)(colon - spec);
    for (size_t i = 0; i < nlen; i++)
        if (!http_is_tchar((unsigned char)spec[i]))
            usage_error("--header: not a field name: '%.*s'", (int)nlen, spec);
    if (static_owned(spec, nlen))
        usage_error("--header: '%.*s' is written by the server itself", (int)nlen, spec);
    const char *v = colon + 1, *ve = v + strlen(v);
    while (*v == ' ' || *v == '\t')
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    for (const char *q = v; q < ve; q++)
        if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
            usage_error("--header: a control character in the value of '%.*s'", (int)nlen, spec);
    if (ve - v > 1000)
        usage_error("--header: the value of '%.*s' is too long (1000 bytes at most)", (int)nlen,
                    spec);
    struct static_header *n =
        realloc(cfg.static_headers, (size_t)(cfg.nstatic_headers + 1) * sizeof *n);
    if (!n)
        die(2, "out of memory");
    cfg.static_headers = n;
    struct static_header *h = &n[cfg.nstatic_headers++];
    h->prefix = clean_prefix("--header", prefix, plen);
    h->prefix_len = strlen(h->prefix);
    size_t ll = nlen + 2 + (size_t)(ve - v) + 3;
    h->line = malloc(ll);
    if (!h->line)
        die(2, "out of memory");
    h->line_len = (size_t)snprintf(h->line, ll, "%.*s: %.*s\r\n", (int)nlen, spec, (int)(ve - v), v);
}

static void add_pythonpath(const char *dir)
{
    char *real = resolve_dir("--pythonpath", dir);
    if (strchr(real, '\n'))
        usage_error("--pythonpath: a newline in '%s'", dir);
    size_t old = cfg.pythonpath ? strlen(cfg.pythonpath) : 0;
    char *p = realloc(cfg.pythonpath, old + strlen(real) + 13);
    if (!p)
        die(2, "out of memory");
    sprintf(p + old, "pythonpath=%s\n", real);
    cfg.pythonpath = p;
    free(real);
}

/* Where each app's init runs first, and the rest of each --wsgi argument:
 *   "module:callable\nmodel=M\nmultiprocess=0|1\nmultithread=0|1\n[pythonpath=DIR\n...][chdir=DIR\n]"
 * Only the event model imports in each worker (unless --preload): the fork
 * model's child per connection cannot afford an import each, and prefork
 * grows its pool when every worker is busy, so a new worker must be ready at
 * once (one that imports for a second looks busy and makes the pool grow
 * more). Those import once in the first process, as if --preload. */
static void wsgi_finish(void)
{
    int forks = !strcmp(cfg.model, "fork"), iter = !strcmp(cfg.model, "iterative");
    int prefork = !strcmp(cfg.model, "prefork");
    int multiprocess = forks || (prefork && cfg.max_workers > 1) ||
                       (!strcmp(cfg.model, "event") && cfg.workers > 1);
    for (int i = 0; i < cfg.nmounts; i++) {
        struct mount *m = &cfg.mounts[i];
        if (m->kind != MOUNT_APP)
            continue;
        if (!m->label) { /* --app */
            m->start = cfg.preload ? APP_START_PRELOAD : APP_START_WORKER;
            continue;
        }
        m->start = cfg.preload || forks || iter || prefork ? APP_START_PRELOAD : APP_START_CHECK;
        size_t n = strlen(m->arg) + strlen(cfg.model) + 64 +
                   (cfg.pythonpath ? strlen(cfg.pythonpath) : 0) +
                   (cfg.chdir ? strlen(cfg.chdir) : 0);
        char *a = malloc(n);
        if (!a)
            die(2, "out of memory");
        snprintf(a, n, "%s\nmodel=%s\nmultiprocess=%d\nmultithread=%d\n%s%s%s%s", m->arg,
                 cfg.model, multiprocess, cfg.threads > 0, cfg.pythonpath ? cfg.pythonpath : "", cfg.chdir ? "chdir=" : "",
                 cfg.chdir ? cfg.chdir : "", cfg.chdir ? "\n" : "");
        free(m->arg);
        m->arg = a;
    }
}

static void parse_app(const char *arg)
{
    /* PREFIX=FILE.so:SYMBOL when an '=' comes first; else FILE.so:SYMBOL
     * (which may itself be an absolute path) mounted at "/" */
    const char *spec = arg, *eq = strchr(arg, '=');
    if (eq) {
        if (arg[0] != '/')
            usage_error("--app: PREFIX must start with '/': '%s'", arg);
        spec = eq + 1;
    }
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        usage_error("--app: expected [PREFIX=]FILE.so:SYMBOL: '%s'", arg);
    struct mount *m = add_mount("--app");
    m->kind = MOUNT_APP;
    m->ops = &mount_ops_app;
    m->prefix = eq ? clean_prefix("--app", arg, (size_t)(eq - arg)) : strdup("/");
    m->prefix_len = strlen(m->prefix);
    m->file = strndup(spec, (size_t)(colon - spec));
    m->symbol = strdup(colon + 1);
    if (!m->prefix || !m->file || !m->symbol)
        die(2, "out of memory");
}

enum {
    O_STATUS = 200, O_STATUSPUB, O_ACCEPT, O_USER, O_GROUP, O_ALLOWROOT, O_PIDFILE, O_ERRORLOG, O_UNIX,
    O_HOST = 256, O_PORT, O_MODEL, O_WORKERS, O_MAXWORKERS, O_MAXCONNS, O_BACKLOG, O_ROOT,
    O_AUTOINDEX, O_ALLOWDOTFILES, O_CGI, O_APP, O_ACCESSLOG, O_VERBOSE, O_QUIET, O_LOGLEVEL, O_HTO, O_BTO, O_KTO,
    O_WTO,
    O_GRACE, O_MAXBODY, O_MAXHEAD, O_MAXLINE, O_MAXHEADERS, O_MAXKA, O_CGITO, O_CGIMAX, O_HELP, O_VERSION,
    O_WSGI, O_PYTHONPATH, O_CHDIR, O_PRELOAD,
};
enum { O_TLSCERT = 400, O_TLSKEY, O_LISTEN, O_REDIRHTTPS, O_TLSPROTOS, O_TLSCIPHERS };
enum { O_UNIXMODE = 500 };
enum { O_LESSON = 900 };
enum { O_THREADS = 1000, O_APPQUEUE, O_APPTIMEOUT, O_APPSTUCK };
enum { O_PROXYPROTO = 1200, O_TRUSTEDPROXY, O_FWDHEADER, O_HEALTH, O_DRAIN };
enum { O_APPINLINE = 1400 };
enum { O_ALOGFMT = 1500 };
enum { O_COMPGW = 1600 };
enum { O_MAXUNREAD = 1100, O_SPOOLBUDGET, O_MINRATE };
enum { O_PRECOMP = 600, O_COMPRESS, O_COMPMIN, O_COMPCACHE, O_HEADER, O_ERRPAGE, O_FALLBACK,
       O_MIME, O_DEFTYPE };

/* --lesson values, in enum lesson order (config.h) */
static const char *const lesson_names[] = {
    [LESSON_KEEP_DUP_FD] = "keep-dup-fd",
    [LESSON_NO_REAP] = "no-reap",
    [LESSON_REAP_ONCE] = "reap-once",
    [LESSON_NO_EINTR_RETRY] = "no-eintr-retry",
};

static const struct option options[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"model", required_argument, 0, O_MODEL},
    {"workers", required_argument, 0, O_WORKERS},
    {"max-workers", required_argument, 0, O_MAXWORKERS},
    {"max-conns", required_argument, 0, O_MAXCONNS},
    {"backlog", required_argument, 0, O_BACKLOG},
    {"root", required_argument, 0, O_ROOT},
    {"autoindex", no_argument, 0, O_AUTOINDEX},
    {"allow-dotfiles", no_argument, 0, O_ALLOWDOTFILES},
    {"cgi", required_argument, 0, O_CGI},
    {"app", required_argument, 0, O_APP},
    {"wsgi", required_argument, 0, O_WSGI},
    {"pythonpath", required_argument, 0, O_PYTHONPATH},
    {"chdir", required_argument, 0, O_CHDIR},
    {"preload", no_argument, 0, O_PRELOAD},
    {"access-log", required_argument, 0, O_ACCESSLOG},
    {"verbose", no_argument, 0, O_VERBOSE},
    {"quiet", no_argument, 0, O_QUIET},
    {"log-level", required_argument, 0, O_LOGLEVEL},
    {"header-timeout", required_argument, 0, O_HTO},
    {"body-timeout", required_argument, 0, O_BTO},
    {"keepalive-timeout", required_argument, 0, O_KTO},
    {"write-timeout", required_argument, 0, O_WTO},
    {"grace", required_argument, 0, O_GRACE},
    {"max-body", required_argument, 0, O_MAXBODY},
    {"max-header-size", required_argument, 0, O_MAXHEAD},
    {"max-unread-body", required_argument, 0, O_MAXUNREAD},
    {"spool-budget", required_argument, 0, O_SPOOLBUDGET},
    {"min-rate", required_argument, 0, O_MINRATE},
    {"max-line", required_argument, 0, O_MAXLINE},
    {"max-headers", required_argument, 0, O_MAXHEADERS},
    {"max-keepalive-requests", required_argument, 0, O_MAXKA},
    {"cgi-timeout", required_argument, 0, O_CGITO},
    {"cgi-max", required_argument, 0, O_CGIMAX},
    {"threads", required_argument, 0, O_THREADS},
    {"app-queue", required_argument, 0, O_APPQUEUE},
    {"app-timeout", required_argument, 0, O_APPTIMEOUT},
    {"app-stuck", required_argument, 0, O_APPSTUCK},
    {"app-inline-us", required_argument, 0, O_APPINLINE},
    {"status", required_argument, 0, O_STATUS},
    {"status-public", no_argument, 0, O_STATUSPUB},
    {"accept", required_argument, 0, O_ACCEPT},
    {"user", required_argument, 0, O_USER},
    {"group", required_argument, 0, O_GROUP},
    {"allow-root", no_argument, 0, O_ALLOWROOT},
    {"pid-file", required_argument, 0, O_PIDFILE},
    {"error-log", required_argument, 0, O_ERRORLOG},
    {"unix", required_argument, 0, O_UNIX},
    {"unix-mode", required_argument, 0, O_UNIXMODE},
    {"lesson", required_argument, 0, O_LESSON},
    {"precompressed", no_argument, 0, O_PRECOMP},
    {"compress", no_argument, 0, O_COMPRESS},
    {"compress-min", required_argument, 0, O_COMPMIN},
    {"compress-cache", required_argument, 0, O_COMPCACHE},
    {"compress-gateways", required_argument, 0, O_COMPGW},
    {"header", required_argument, 0, O_HEADER},
    {"error-page", required_argument, 0, O_ERRPAGE},
    {"fallback", required_argument, 0, O_FALLBACK},
    {"mime", required_argument, 0, O_MIME},
    {"default-type", required_argument, 0, O_DEFTYPE},
    {"tls-cert", required_argument, 0, O_TLSCERT},
    {"tls-key", required_argument, 0, O_TLSKEY},
    {"listen", required_argument, 0, O_LISTEN},
    {"redirect-https", no_argument, 0, O_REDIRHTTPS},
    {"tls-protocols", required_argument, 0, O_TLSPROTOS},
    {"tls-ciphers", required_argument, 0, O_TLSCIPHERS},
    {"access-log-format", required_argument, 0, O_ALOGFMT},
    {"proxy-protocol", no_argument, 0, O_PROXYPROTO},
    {"trusted-proxy", required_argument, 0, O_TRUSTEDPROXY},
    {"forwarded-header", required_argument, 0, O_FWDHEADER},
    {"health", required_argument, 0, O_HEALTH},
    {"drain", required_argument, 0, O_DRAIN},
    {"help", no_argument, 0, O_HELP},
    {"version", no_argument, 0, O_VERSION},
    {0, 0, 0, 0},
};

void config_parse(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.host = "0.0.0.0";
    cfg.port = 8888;
    cfg.log_level = LOG_INFO;
    cfg.model = "event";
    cfg.workers = ncpu > 0 ? (int)ncpu : 1;
    cfg.max_workers = 256;
    cfg.max_conns = 4096;
    cfg.backlog = 1024;
    cfg.root = ".";
    cfg.header_timeout = 10000;
    cfg.body_timeout = 30000;
    cfg.keepalive_timeout = 5000;
    cfg.write_timeout = 30000;
    cfg.grace = 10000;
    cfg.max_body = (int64_t)1 << 30; /* Apache's LimitRequestBody */
    cfg.max_unread_body = 1048576;
    cfg.spool_budget = (int64_t)2 << 30;
    cfg.min_rate = 500; /* Apache's mod_reqtimeout MinRate */
    cfg.max_head = 16384;
    cfg.max_line = 8192;
    cfg.max_headers = 100;
    cfg.max_keepalive_requests = 10000;
    cfg.cgi_timeout = 60000;
    cfg.cgi_max = 32;
    /* 64, not gunicorn's usual 32: with one shared listener a worker may take
     * most of a burst of keep-alive connections (the kernel wakes the latest
     * waiter), and with fewer threads than connections its calls queue while
     * the other worker idles. Threads start as calls come: unused ones cost
     * nothing. */
    cfg.threads = 64;
    cfg.app_queue = 256;
    cfg.app_timeout = 30000;
    cfg.app_stuck = 0; /* 0: half of --threads (at least 1), after parsing */
    cfg.app_inline_us = 250;
    cfg.unix_mode = 0660;
    cfg.compress_min = 256;
    cfg.compress_cache = 16 << 20;
    cfg.compress_gateways = 1;

    int workers_set = 0, body_set = 0, unread_set = 0;
    opterr = 0; /* we print our own one-line errors */
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case O_HOST: cfg.host = optarg; break;
        case O_PORT: cfg.port = (int)parse_int("--port", optarg, 0, 65535); break;
        case O_MODEL: cfg.model = optarg; break;
        case O_WORKERS: cfg.workers = (int)parse_int("--workers", optarg, 1, 1024); workers_set = 1; break;
        case O_MAXWORKERS: cfg.max_workers = (int)parse_int("--max-workers", optarg, 1, 4096); break;
        case O_MAXCONNS: cfg.max_conns = (int)parse_int("--max-conns", optarg, 1, 1000000); cfg.max_conns_set = 1; break;
        case O_BACKLOG: cfg.backlog = (int)parse_int("--backlog", optarg, 1, 65535); break;
        case O_ROOT: cfg.root = optarg; break;
        case O_AUTOINDEX: cfg.autoindex = 1; break;
        case O_ALLOWDOTFILES: cfg.allow_dotfiles = 1; break;
        case O_CGI: parse_cgi(optarg); break;
        case O_APP: parse_app(optarg); break;
        case O_WSGI: parse_wsgi(optarg); break;
        case O_PYTHONPATH: add_pythonpath(optarg); break;
        case O_CHDIR:
            free(cfg.chdir); /* the last --chdir wins */
            cfg.chdir = resolve_dir("--chdir", optarg);
            if (strchr(cfg.chdir, '\n'))
                usage_error("--chdir: a newline in '%s'", optarg);
            break;
        case O_PRELOAD: cfg.preload = 1; break;
        case O_ACCESSLOG: cfg.access_log = optarg; break;
        case O_VERBOSE: cfg.verbose = 1; cfg.log_level = LOG_DEBUG; break;
        case O_QUIET: cfg.quiet = 1; cfg.log_level = LOG_ERROR; break;
        case O_LOGLEVEL:
            if ((cfg.log_level = log_level_parse(optarg)) < 0)
                usage_error("--log-level: '%s' is not one of error, warn, info, debug", optarg);
            break;
        case O_HTO: cfg.header_timeout = parse_seconds("--header-timeout", optarg); break;
        case O_BTO: cfg.body_timeout = parse_seconds("--body-timeout", optarg); break;
        case O_KTO: cfg.keepalive_timeout = parse_seconds("--keepalive-timeout", optarg); break;
        case O_WTO: cfg.write_timeout = parse_seconds("--write-timeout", optarg); break;
        case O_GRACE: cfg.grace = parse_seconds("--grace", optarg); break;
        case O_MAXBODY: cfg.max_body = parse_int("--max-body", optarg, 0, INT64_MAX / 2); body_set = 1; break;
        case O_MAXUNREAD: cfg.max_unread_body = parse_int("--max-unread-body", optarg, 0, INT64_MAX / 2); unread_set = 1; break;
        case O_SPOOLBUDGET: cfg.spool_budget = parse_int("--spool-budget", optarg, 0, INT64_MAX / 2); break;
        case O_MINRATE: cfg.min_rate = (int)parse_int("--min-rate", optarg, 0, 1 << 30); break;
        case O_MAXHEAD: cfg.max_head = (size_t)parse_int("--max-header-size", optarg, 256, 1 << 20); break;
        case O_MAXLINE: cfg.max_line = (size_t)parse_int("--max-line", optarg, 64, 1 << 20); break;
        case O_MAXHEADERS: cfg.max_headers = (size_t)parse_int("--max-headers", optarg, 1, 100); break;
        case O_MAXKA: cfg.max_keepalive_requests = (unsigned)parse_int("--max-keepalive-requests", optarg, 1, 1000000000); break;
        case O_CGITO: cfg.cgi_timeout = parse_seconds("--cgi-timeout", optarg); break;
        case O_CGIMAX: cfg.cgi_max = (int)parse_int("--cgi-max", optarg, 1, 65536); break;
        case O_THREADS: cfg.threads = (int)parse_int("--threads", optarg, 0, 1024); break;
        case O_APPQUEUE: cfg.app_queue = (int)parse_int("--app-queue", optarg, 0, 1000000); break;
        case O_APPTIMEOUT: cfg.app_timeout = parse_seconds("--app-timeout", optarg); break;
        case O_APPSTUCK: cfg.app_stuck = (int)parse_int("--app-stuck", optarg, 1, 1024); break;
        case O_APPINLINE: cfg.app_inline_us = (int)parse_int("--app-inline-us", optarg, 0, 1000000); break;
        case O_STATUS: {
            struct mount *m = add_mount("--status");
            m->kind = MOUNT_STATUS;
            m->ops = &mount_ops_status;
            m->prefix = clean_prefix("--status", optarg, strlen(optarg));
            m->prefix_len = strlen(m->prefix);
            /* the page answers only its canonical spelling (h_status.c) */
            char canon[1024];
            int cn = http_normalize_path(m->prefix, m->prefix_len, canon, sizeof canon);
            if (cn < 0 || (size_t)cn != m->prefix_len || memcmp(canon, m->prefix, cn) != 0 ||
                strpbrk(m->prefix, "?#"))
                usage_error("--status: '%s' is not a plain path (no %%XX, '.', '..', '//')",
                            optarg);
            break;
        }
        case O_STATUSPUB: cfg.status_public = 1; break;
        case O_ACCEPT:
            if (strcmp(optarg, "exclusive") == 0)
                cfg.reuseport = 0;
            else if (strcmp(optarg, "reuseport") == 0)
                cfg.reuseport = 1;
            else
                usage_error("--accept: 'exclusive' or 'reuseport', not '%s'", optarg);
            break;
        case O_USER: cfg.user = optarg; break;
        case O_GROUP: cfg.group = optarg; break;
        case O_ALLOWROOT: cfg.allow_root = 1; break;
        case O_PIDFILE: cfg.pid_file = optarg; break;
        case O_ERRORLOG: cfg.error_log = optarg; break;
        case O_UNIX: cfg.unix_path = optarg; break;
        case O_UNIXMODE: {
            char *end;
            errno = 0;
            long mode = strtol(optarg, &end, 8);
            if (errno || end == optarg || *end || mode < 0 || mode > 0777 || optarg[0] == '-' ||
                optarg[0] == '+' || optarg[0] == ' ')
                usage_error("--unix-mode: not an octal mode in 0..0777: '%s'", optarg);
            cfg.unix_mode = (int)mode;
            break;
        }
        case O_PRECOMP: cfg.precompressed = 1; break;
        case O_COMPRESS: cfg.compress = 1; break;
        case O_COMPMIN: cfg.compress_min = parse_int("--compress-min", optarg, 0, 1 << 30); break;
        case O_COMPCACHE: cfg.compress_cache = parse_int("--compress-cache", optarg, 0, (int64_t)1 << 40); break;
        case O_COMPGW:
            if (strcmp(optarg, "on") == 0 || strcmp(optarg, "off") == 0)
                cfg.compress_gateways = optarg[1] == 'n';
            else
                usage_error("--compress-gateways: 'on' or 'off', not '%s'", optarg);
            break;
        case O_HEADER: parse_static_header(optarg); break;
        case O_ERRPAGE: parse_error_page(optarg); break;
        case O_FALLBACK:
            free(cfg.fallback); /* the last one wins */
            cfg.fallback = root_path("--fallback", optarg, optarg);
            break;
        case O_MIME: {
            const char *eq = strchr(optarg, '=');
            char ext[64];
            if (!eq || (size_t)(eq - optarg) >= sizeof ext)
                usage_error("--mime: expected EXT=TYPE: '%s'", optarg);
            snprintf(ext, sizeof ext, "%.*s", (int)(eq - optarg), optarg);
            if (mime_set(ext, eq + 1) < 0)
                usage_error("--mime: expected EXT=TYPE (an extension of letters and digits, a "
                            "type/subtype): '%s'", optarg);
            break;
        }
        case O_DEFTYPE:
            if (mime_set_default(optarg) < 0)
                usage_error("--default-type: not a type/subtype: '%s'", optarg);
            break;
        case O_LESSON:
            cfg.lesson = LESSON_NONE;
            for (int i = 1; i < (int)(sizeof lesson_names / sizeof lesson_names[0]); i++)
                if (strcmp(optarg, lesson_names[i]) == 0)
                    cfg.lesson = i;
            if (cfg.lesson == LESSON_NONE)
                usage_error("--lesson: '%s' is not one of keep-dup-fd, no-reap, reap-once, "
                            "no-eintr-retry", optarg);
            cfg.lesson_name = lesson_names[cfg.lesson];
            break;
        case O_TLSCERT:
            if (cfg.ntls_cert == FH_MAX_CERTS)
                usage_error("--tls-cert: at most %d certificates", FH_MAX_CERTS);
            if (cfg.ntls_cert != cfg.ntls_key)
                usage_error("--tls-cert %s: the --tls-cert before it has no --tls-key", optarg);
            cfg.tls_cert[cfg.ntls_cert++] = optarg;
            break;
        case O_TLSKEY:
            if (cfg.ntls_key >= cfg.ntls_cert)
                usage_error("--tls-key %s: give its --tls-cert first (they come in pairs)", optarg);
            cfg.tls_key[cfg.ntls_key++] = optarg;
            break;
        case O_LISTEN: net_listen_spec(optarg); break;
        case O_REDIRHTTPS: cfg.redirect_https = 1; break;
        case O_TLSPROTOS: cfg.tls_protocols = optarg; break;
        case O_TLSCIPHERS: cfg.tls_ciphers = optarg; break;
        case O_ALOGFMT:
            if (access_log_format_set(optarg) < 0)
                usage_error("--access-log-format: expected combined or tls: '%s'", optarg);
            break;
        case O_PROXYPROTO: cfg.proxy_protocol = 1; net_proxy_main = 1; break;
        case O_TRUSTEDPROXY:
            if (cfg.ntrusted == REALIP_MAX_CIDRS)
                usage_error("--trusted-proxy: at most %d networks", REALIP_MAX_CIDRS);
            if (realip_parse_cidr(optarg, &cfg.trusted[cfg.ntrusted]) < 0)
                usage_error("--trusted-proxy: expected an address or ADDRESS/BITS without host "
                            "bits (10.0.0.0/8, 2001:db8::/32): '%s'", optarg);
            cfg.ntrusted++;
            break;
        case O_FWDHEADER:
            if (strcasecmp(optarg, "x-forwarded-for") == 0)
                cfg.forwarded_header = REALIP_XFF;
            else if (strcasecmp(optarg, "forwarded") == 0)
                cfg.forwarded_header = REALIP_FORWARDED;
            else
                usage_error("--forwarded-header: 'x-forwarded-for' or 'forwarded', not '%s'",
                            optarg);
            break;
        case O_HEALTH:
            if (optarg[0] != '/' || strpbrk(optarg, "?# \t\r\n"))
                usage_error("--health: expected a plain path like /healthz: '%s'", optarg);
            cfg.health = optarg;
            break;
        case O_DRAIN: cfg.drain = strcmp(optarg, "0") == 0 ? 0 : parse_seconds("--drain", optarg); break;
        case 'h': /* -h: the one short option, an alias of --help */
        case O_HELP: fputs(usage_text, stdout); exit(0);
        case O_VERSION: printf("forkhttpd %s\n", FH_VERSION); exit(0);
        case ':':
            usage_error("%s: missing argument", argv[optind - 1]);
            break;
        default:
            usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (cfg.verbose && cfg.quiet)
        usage_error("--verbose and --quiet exclude each other");
    if (cfg.lesson && strcmp(cfg.model, "fork") != 0)
        usage_error("--lesson applies to --model fork only, not to --model %s", cfg.model);
    if (cfg.max_line > cfg.max_head)
        cfg.max_line = cfg.max_head;
    if (body_set && !unread_set)
        cfg.max_unread_body = cfg.max_body; /* --max-body alone: one limit for every body, as before */
    if (cfg.max_workers < cfg.workers)
        cfg.max_workers = cfg.workers;
    cfg.workers_set = workers_set;
    if (cfg.ntls_cert != cfg.ntls_key)
        usage_error("--tls-cert %s: needs its --tls-key", cfg.tls_cert[cfg.ntls_cert - 1]);
    if (net_spec_wants_tls() && !cfg.ntls_cert)
        usage_error("--listen .../tls needs --tls-cert and --tls-key");
    if ((cfg.proxy_protocol || net_spec_wants_proxy()) && !cfg.ntrusted)
        usage_error("%s expects PROXY headers: say whose with --trusted-proxy CIDR",
                    cfg.proxy_protocol ? "--proxy-protocol" : "--listen .../proxy");
    if (cfg.drain && strcmp(cfg.model, "prefork") != 0 && strcmp(cfg.model, "event") != 0)
        usage_error("--drain applies to --model prefork and event (a master keeps serving "
                    "while it drains), not to --model %s", cfg.model);
    if (cfg.proxy_protocol && cfg.unix_path)
        usage_error("--proxy-protocol applies to --host/--port, not --unix");
    if (cfg.redirect_https && !cfg.ntls_cert)
        usage_error("--redirect-https needs an HTTPS listener (--tls-cert and --tls-key)");
    if (strcmp(cfg.model, "event") != 0)
        cfg.threads = 0; /* one connection per process: a pool would gain nothing */
    if (!cfg.app_stuck)
        cfg.app_stuck = cfg.threads / 2 > 1 ? cfg.threads / 2 : 1;
    wsgi_finish();
    mime_load("/etc/mime.types"); /* Debian's media-types; the built-ins without it */

    /* The static root is the fallback mount "/" (router.c: longest prefix wins). */
    struct mount *m = add_mount("--root");
    m->kind = MOUNT_STATIC;
    m->ops = &mount_ops_static;
    m->prefix = strdup("/");
    m->prefix_len = 1;
    m->dir = resolve_dir("--root", cfg.root);
    if (!m->prefix)
        die(2, "out of memory");
}

void config_free(void)
{
    for (int i = 0; i < cfg.nmounts; i++) {
        struct mount *m = &cfg.mounts[i];
        if (m->dir_fd >= 0)
            close(m->dir_fd);
        free(m->prefix);
        free(m->dir);
        free(m->file);
        free(m->symbol);
        free(m->arg);
        free(m->label);
    }
    cfg.nmounts = 0;
    free(cfg.pythonpath);
    cfg.pythonpath = NULL;
    free(cfg.chdir);
    cfg.chdir = NULL;
    for (int i = 0; i < cfg.nstatic_headers; i++) {
        free(cfg.static_headers[i].prefix);
        free(cfg.static_headers[i].line);
    }
    free(cfg.static_headers);
    cfg.static_headers = NULL;
    cfg.nstatic_headers = 0;
    for (int i = 0; i < cfg.nerror_pages; i++)
        free(cfg.error_pages[i].path);
    free(cfg.error_pages);
    cfg.error_pages = NULL;
    cfg.nerror_pages = 0;
    free(cfg.fallback);
    cfg.fallback = NULL;
    mime_free();
}
