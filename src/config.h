/* config.h - command line -> struct config. Read-only once the server runs. */
#ifndef FH_CONFIG_H
#define FH_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define FH_VERSION "0.1.0"
#define FH_SERVER "forkhttpd/" FH_VERSION
#define FH_MAX_MOUNTS 32

enum mount_kind { MOUNT_STATIC, MOUNT_CGI, MOUNT_APP, MOUNT_STATUS };

/* Where an app's SYMBOL_init first runs (h_app.c): */
enum app_start {
    APP_START_WORKER,  /* in each serving process after fork (the default) */
    APP_START_PRELOAD, /* once in the first process before listening; forks inherit it
                          (--preload; --wsgi in every model but event) */
    APP_START_CHECK,   /* per worker, but tried once at startup in a throw-away child so
                          an app that cannot start stops the server (--wsgi) */
};

/* One entry of the mount table: URL prefix -> handler (router.c). */
struct mount {
    enum mount_kind kind;
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
    /* operating as a service */
    const char *user;      /* --user: drop to this user after binding (when root) */
    const char *group;     /* --group */
    int allow_root;        /* --allow-root: stay root without a warning */
    const char *pid_file;  /* --pid-file */
    const char *error_log; /* --error-log: stderr (ours, CGI scripts', apps') goes there */
    const char *unix_path; /* --unix: listen on a UNIX socket instead of TCP */

    /* timeouts, milliseconds */
    int header_timeout;
    int body_timeout;
    int keepalive_timeout;
    int write_timeout;
    int grace;
    int cgi_timeout;   /* --cgi-timeout: a CGI script's head must come within it */

    /* limits */
    int64_t max_body;
    size_t max_head;
    size_t max_line;
    size_t max_headers;
    unsigned max_keepalive_requests;
    int cgi_max;       /* --cgi-max: concurrent CGI scripts per worker process */

    /* WSGI (--wsgi mounts run build/wsgi.so; docs/wsgi.md) */
    int preload;       /* --preload: every app's init runs once before forking */
    char *pythonpath;  /* --pythonpath DIRs, absolute, one "pythonpath=DIR\n" line each */
    char *chdir;       /* --chdir DIR, absolute */

    struct mount mounts[FH_MAX_MOUNTS];
    int nmounts;
};

extern struct config cfg;

/* Parse argv into cfg. On a bad flag prints one line to stderr and exits 2;
 * --help / --version print and exit 0. */
void config_parse(int argc, char **argv);
void config_free(void);

#endif
