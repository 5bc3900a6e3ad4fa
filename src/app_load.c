/* app_load.c - the life cycle of C apps (--app [PREFIX=]FILE.so:SYMBOL):
 *   load     h_app_load(): dlopen each app before listening, find SYMBOL, the
 *            API version, SYMBOL_init/SYMBOL_fini; one line and -1 on failure.
 *   process  h_worker_start()/h_worker_stop(): the crash handlers and the
 *            apps' init/fini, in each process that serves requests. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app_int.h"
#include "app_pool.h"
#include "log.h"

#define VERSION_SYMBOL "forkhttpd_app_api_version"

static struct app *apps[FH_MAX_MOUNTS];
static int napps;

static int starting_up; /* inside app_startup() */

int app_ready(struct app *a)
{
    if (a->ready || a->broken)
        return a->ready;
    if (a->init) {
        app_crash_enter(a, NULL, 0, " in its init");
        int rc = a->init(&app_api, &a->state);
        app_crash_leave();
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
    snprintf(hook, sizeof hook, "%s_flags", sym);
    const unsigned *flags = own_sym(a->dl, hook);
    a->flags = flags ? *flags : 0;
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
        app_ready(a);
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
        app_ready(a);
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
            app_crash_enter(a, NULL, 0, " in its fini");
            a->fini(&app_api, a->state);
            app_crash_leave();
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
    app_crash_install();
    for (int k = 0; k < napps; k++)
        app_ready(apps[k]);
    app_pool_start(); /* --threads: the pool's threads start with the first calls */
}

void h_worker_stop(void)
{
    if (napps == 0) /* (nothing started; a fork child writes no global for it) */
        return;
    app_pool_stop(); /* before fini: no call may run under it */
    fini_ready();
    areq_pool_free();
    app_crash_uninstall();
}
