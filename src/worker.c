/* worker.c - the per-process hook table (worker.h). Adding a part that owns
 * per-process state (TLS contexts, a thread pool...) is one line here. */
#include "worker.h"

#include <stddef.h>

#include "conn.h"
#include "handler.h"
#include "tls.h"

static void cgi_end(void)
{
    h_cgi_reap(1); /* the scripts of the last connections: no zombie, none left running */
}

static const struct hook {
    const char *name;
    void (*begin)(void);
    void (*stop)(void); /* always run at the end */
    void (*free)(void); /* run unless the process _exit()s next */
} hooks[] = {
    {"tls contexts", NULL, NULL, tls_free}, /* made by the master (tls.h): this copy */
    {"connection buffers", NULL, NULL, conn_pool_free},
    {"open-file cache", NULL, NULL, h_static_cache_free},
    {"cgi", NULL, cgi_end, NULL},
    /* apps: init in this process; fini, then their handles (loaded before
     * the fork) are this process's copy to close */
    {"apps", h_worker_start, h_worker_stop, h_app_unload},
};

#define NHOOKS (sizeof hooks / sizeof hooks[0])

void worker_begin(void)
{
    for (size_t i = 0; i < NHOOKS; i++)
        if (hooks[i].begin)
            hooks[i].begin();
}

void worker_end(enum worker_end_how how)
{
    for (size_t i = NHOOKS; i-- > 0;) {
        if (hooks[i].stop)
            hooks[i].stop();
        if (how == WORKER_FREE && hooks[i].free)
            hooks[i].free();
    }
}
