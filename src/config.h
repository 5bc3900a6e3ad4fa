/* config.h - command line -> struct config. Read-only once the server runs. */
#ifndef FH_CONFIG_H
#define FH_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "realip.h" /* --trusted-proxy networks */

#define FH_VERSION "0.1.0"
#define FH_SERVER "forkhttpd/" FH_VERSION
#define FH_MAX_MOUNTS 32
#define FH_MAX_CERTS 16

enum mount_kind { MOUNT_STATIC, MOUNT_CGI, MOUNT_APP, MOUNT_STATUS };

/* Where an app's SYMBOL_init first runs (h_app.c): */
enum app_start {
    APP_START_WORKER,  /* in each serving process after fork (the default) */
    APP_START_PRELOAD, /* once in the first process before listening; forks inherit it
                          (--preload; --wsgi in every model but event) */
    APP_START_CHECK,   /* per worker, but tried once at startup in a throw-away child so
                          an app that cannot start stops the server (--wsgi) */
};

struct mount;
struct request;
struct response;

/* What a kind of mount does, as data: one const table per kind, defined in
 * router.c (above the handlers) and pointed to by struct mount's ops, set
 * where config.c makes the mount. The type lives here, below the handlers,
 * so config.c can name the tables without including anything above it. A
 * new kind is a table and a line in config.c; nothing switches on the kind. */
struct mount_ops {
    const char *name; /* "static", "cgi", "app", "status" (status page, logs) */
    int wants_body;   /* the body is spooled and given to the handler (else dropped) */
    void (*call)(const struct request *req, struct response *resp);
    /* One line on what serves the prefix (a directory, FILE.so:SYMBOL...) into
     * buf (always NUL-terminated): the status page's mount table. */
    void (*describe)(const struct mount *m, char *buf, size_t cap);
};

extern const struct mount_ops mount_ops_static, mount_ops_cgi, mount_ops_app, mount_ops_status;

/* One entry of the mount table: URL prefix -> handler (router.c). */
struct mount {
    enum mount_kind kind;
    const struct mount_ops *ops; /* the kind's table (router.c), set with kind */
    char *prefix;      /* "/" or "/x/y" (no trailing slash except "/") */
    size_t prefix_len;
    char *dir;         /* static root or CGI directory (absolute, resolved) */
    int dir_fd;        /* O_PATH fd of dir, opened once at startup */
    char *file;        /* app: FILE.so */
    char *symbol;      /* app: SYMBOL */
    void *app;         /* app: loaded state (h_app.c) */
    char *arg;         /* app: the argument the app reads with fh_mount_arg, or NULL */
    char *label;       /* app: its name in logs ("wsgi hello:app"); NULL: FILE.so:SYMBOL */
    enum app_start start;
};

/* --lesson: the fork model re-introduces one bug of the tutorial, for
 * teaching (docs/tutorial.md); never on by default. */
enum lesson {
    LESSON_NONE,
    LESSON_KEEP_DUP_FD,     /* the parent keeps its copy of the client socket */
    LESSON_NO_REAP,         /* no SIGCHLD handler: every child stays a zombie */
    LESSON_REAP_ONCE,       /* one waitpid per SIGCHLD: signals are not queued */
    LESSON_NO_EINTR_RETRY,  /* accept() interrupted by SIGCHLD ends the server */
};

struct config {
    const char *host;
    int port;
    const char *model;
    int workers;
    int workers_set;   /* given on the command line */
    int max_workers;
    int max_conns;
    int reuseport;     /* --accept reuseport (event): a listener per worker */
    int backlog;
    const char *root;
    int autoindex;
    int allow_dotfiles; /* --allow-dotfiles: serve names starting with '.' (h_static.c) */
    const char *access_log;
    int verbose;
    int quiet;
    int log_level;  /* LOG_ERROR..LOG_DEBUG (log.h): --log-level, --quiet, --verbose */
    int status_public; /* --status-public: the status page for any client */
    int lesson;        /* --lesson (fork model only): enum lesson; 0 = none */
    const char *lesson_name;
    /* operating as a service */
    const char *user;      /* --user: drop to this user after binding (when root) */
    const char *group;     /* --group */
    int allow_root;        /* --allow-root: stay root without a warning */
    const char *pid_file;  /* --pid-file */
    const char *error_log; /* --error-log: stderr (ours, CGI scripts', apps') goes there */
    const char *unix_path; /* --unix: listen on a UNIX socket instead of TCP */
    int unix_mode;         /* --unix-mode: its permissions (default 0660) */

    /* timeouts, milliseconds */
    int header_timeout;
    int body_timeout;
    int keepalive_timeout;
    int write_timeout;
    int grace;
    int cgi_timeout;   /* --cgi-timeout: a CGI script's head must come within it */

    /* limits */
    int64_t max_body;        /* a body a handler reads (spooled: CGI, apps), else 413 */
    int64_t max_unread_body; /* --max-unread-body: a body nobody reads (static...), else 413 */
    int64_t spool_budget;    /* --spool-budget: spooled body bytes per process, else 503 */
    int min_rate;            /* --min-rate: bytes/s a head or body must average (0: off) */
    int max_conns_set;       /* --max-conns given (else derived from RLIMIT_NOFILE, main.c) */
    size_t max_head;
    size_t max_line;
    size_t max_headers;
    unsigned max_keepalive_requests;
    int cgi_max;       /* --cgi-max: concurrent CGI scripts per worker process */
    /* apps on threads (app_pool.c, docs/apps.md): event model only */
    int threads;       /* --threads: pool threads per event worker; 0: apps run in the loop */
    int app_queue;     /* --app-queue: calls waiting per worker when all threads are busy, else 503 */
    int app_timeout;   /* --app-timeout (ms): a call running longer answers 504 */
    int app_stuck;     /* --app-stuck: stuck calls that make the master recycle a worker */
    int app_inline_us; /* --app-inline-us: calls of a thread-safe app this short run in the loop; 0 never */

    /* WSGI (--wsgi mounts run build/wsgi.so; docs/wsgi.md) */
    int preload;       /* --preload: every app's init runs once before forking */
    char *pythonpath;  /* --pythonpath DIRs, absolute, one "pythonpath=DIR\n" line each */
    char *chdir;       /* --chdir DIR, absolute */

    /* static sites (docs/static.md) */
    int precompressed;       /* --precompressed: file.br / file.gz sidecars */
    int compress;            /* --compress: gzip/br text types on the fly */
    int64_t compress_min;    /* --compress-min: smaller files go as they are */
    int64_t compress_cache;  /* --compress-cache: bytes of compressed variants kept per process */
    int compress_gateways;   /* --compress-gateways on|off: with --compress, app, CGI and WSGI
                                responses too (default on; docs/static.md) */
    struct static_header {   /* --header [PREFIX=]'Name: value' */
        char *prefix;        /* "/" or "/x" (no trailing slash but for "/") */
        size_t prefix_len;
        char *line;          /* "Name: value\r\n" */
        size_t line_len;
    } *static_headers;
    int nstatic_headers;
    struct error_page {      /* --error-page CODE=PATH */
        int status;
        char *path;          /* inside the root, no leading '/' */
    } *error_pages;
    int nerror_pages;
    char *fallback;          /* --fallback PATH: inside the root, no leading '/' */

    struct mount mounts[FH_MAX_MOUNTS];
    int nmounts;

    /* HTTPS (tls.c, docs/tls.md): --tls-cert/--tls-key pairs, the first is
     * the default certificate, the others are chosen by SNI */
    const char *tls_cert[FH_MAX_CERTS];
    const char *tls_key[FH_MAX_CERTS];
    int ntls_cert, ntls_key;
    const char *tls_protocols; /* --tls-protocols, NULL: TLSv1.2,TLSv1.3 */
    const char *tls_ciphers;   /* --tls-ciphers, NULL: Mozilla intermediate */
    int redirect_https;        /* --redirect-https */

    /* behind balancers (docs/deploy.md) */
    int proxy_protocol;        /* --proxy-protocol: the --host/--port listener expects PROXY */
    struct realip_cidr trusted[REALIP_MAX_CIDRS]; /* --trusted-proxy CIDR */
    int ntrusted;
    int forwarded_header;      /* --forwarded-header: REALIP_XFF or REALIP_FORWARDED (realip.h) */
    const char *health;        /* --health PATH: 200, or 503 while draining */
    int drain;                 /* --drain S (ms): after SIGTERM, --health says 503 this long first */
};

extern struct config cfg;

/* Parse argv into cfg. On a bad flag prints one line to stderr and exits 2;
 * --help / --version print and exit 0. */
void config_parse(int argc, char **argv);
void config_free(void);

#endif
