/* model.h - the concurrency models: each decides only *who* runs a connection;
 * conn.c decides how it is served. */
#ifndef FH_MODEL_H
#define FH_MODEL_H

#include "net.h"

struct model {
    const char *name;
    int (*run)(int lfd);   /* serve until a stop signal; returns the exit status */
    int uses_workers;      /* does --workers mean anything here? */
};

const struct model *model_find(const char *name);

const char *model_names(void);

int model_iterative(int lfd);
int model_fork(int lfd);
int model_prefork(int lfd);
int model_event(int lfd);

/* serve.c: run one connection to completion in this process, waiting with
 * poll() for what conn_step asks (the blocking models: iterative, fork, prefork). */
void serve_connection(int fd, const union net_addr *peer, int listener);
/* accept() error handling shared by the accept loops: 0 to retry at once. */
int accept_error(int err);

#endif
