/* main.c - argv -> config, bind the listener, pick the model, run it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "handler.h"
#include "log.h"
#include "model.h"
#include "net.h"
#include "sig.h"
#include "supervise.h"

static const struct model models[] = {
    {"iterative", model_iterative, 0},
    {"fork", model_fork, 0},
    {"prefork", model_prefork, 1},
    {"event", model_event, 1},
};

const struct model *model_find(const char *name)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    return NULL;
}

const char *model_names(void)
{
    static char buf[128];
    size_t n = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "|" : "", models[i].name);
    return buf;
}

int main(int argc, char **argv)
{
    config_parse(argc, argv);
    tzset(); /* read the zone once here, not in every forked child */
    log_verbose_on = cfg.verbose;

    const struct model *model = model_find(cfg.model);
    if (!model) {
        fprintf(stderr, "forkhttpd: --model: unknown model '%s' (one of %s)\n", cfg.model,
                model_names());
        return 2;
    }
    for (int i = 0; i < cfg.nmounts; i++) {
        struct mount *m = &cfg.mounts[i];
        if (!m->dir)
            continue;
        m->dir_fd = open(m->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (m->dir_fd < 0) {
            fprintf(stderr, "forkhttpd: %s: %s\n", m->dir, strerror(errno));
            return 2;
        }
    }
    if (access_log_open(cfg.access_log) < 0)
        return 2;
    if (h_app_load() < 0)
        return 2;

    int port = 0;
    int lfd = net_listen(cfg.host, cfg.port, cfg.backlog, &port);
    if (lfd < 0)
        return 2;
    sig_install();

    int workers = model->uses_workers ? cfg.workers : 1;
    printf("Serving HTTP on %s port %d (model %s, %d worker%s) ...\n", cfg.host, port,
           model->name, workers, workers == 1 ? "" : "s");
    fflush(stdout);
    if (!cfg.quiet && !model->uses_workers && cfg.workers_set)
        warn("note: --workers is ignored by the %s model", model->name);

    if (sb_init() < 0)
        return 1;
    if (!model->uses_workers) { /* the server itself is the one "worker" */
        sb_self = &sb->slot[0];
        sb_self->pid = getpid();
        sb_self->state = SB_IDLE;
        sb->nslots = 1;
    }
    net_listen_fd = lfd;
    int rc = model->run(lfd);

    close(lfd);
    conn_pool_free();
    h_static_cache_free();
    h_app_unload();
    config_free();
    sb_free();
    return rc;
}
