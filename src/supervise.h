/* supervise.h - the master process of the prefork and event models. The
 * scoreboard it shares with its workers is its own unit (scoreboard.h). */
#ifndef FH_SUPERVISE_H
#define FH_SUPERVISE_H

#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "scoreboard.h"

/* What a model plugs into the master. */
struct sup_model {
    const char *name;
    /* Prepare the listener before any worker starts (e.g. O_NONBLOCK). */
    void (*setup)(int lfd);
    /* After the first workers are forked (e.g. wait until they listen). */
    void (*started)(void);
    /* A worker's whole life; returns its exit status. */
    int (*worker)(int lfd);
    /* Called on each master wake-up (signal or tick): may ask for more or
     * fewer workers through sup_want(). NULL: a fixed pool. */
    void (*balance)(void);
};

/* Run the master: fork cfg.workers workers, supervise until stopped.
 * Returns the process exit status (0 after a graceful stop). */
int sup_run(int lfd, const struct sup_model *m);

/* For balance(): workers alive in the current generation, and how many are idle. */
int sup_current(int *idle);
/* Start n more workers (bounded by --max-workers) / stop one idle worker. */
void sup_spawn_more(int n);
void sup_retire_idle(void);

#endif
