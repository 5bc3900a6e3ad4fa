/* supervise.h - the master process of the prefork and event models, and the
 * scoreboard it shares with its workers. */
#ifndef FH_SUPERVISE_H
#define FH_SUPERVISE_H

#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#define SB_MAX_SLOTS 4096

enum sb_state { SB_FREE = 0, SB_STARTING, SB_IDLE, SB_BUSY, SB_STOPPING };

/* One worker's line on the scoreboard (shared memory, written by the worker,
 * read by the master). Plain stores of aligned words: a torn read only
 * shows a slightly stale number. */
struct sb_slot {
    volatile pid_t pid;
    volatile int state;
    volatile int gen;
    volatile uint64_t accepted;
    volatile uint64_t requests;
    volatile uint64_t active;  /* open connections */
    volatile uint64_t cgi;     /* CGI scripts running */
    char request[120];         /* the request line being served, for crash reports */
};

struct scoreboard {
    volatile pid_t master;
    volatile int nslots;
    time_t started;            /* for the uptime */
    volatile uint64_t reaped;  /* children reaped by the master (or the fork model's parent) */
    int idle; /* prefork: workers waiting in accept (atomic updates) */
    struct sb_slot slot[SB_MAX_SLOTS];
};

/* This process's slot, or NULL outside a supervised worker. */
extern struct sb_slot *sb_self;
extern struct scoreboard *sb;

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

/* Create the scoreboard (shared memory) before any fork; every model has
 * one, for the status page. In iterative and fork, slot 0 is the server
 * (fork's children count their requests there too). 0 or -1. */
int sb_init(void);
void sb_free(void);

/* Run the master: fork cfg.workers workers, supervise until stopped.
 * Returns the process exit status (0 after a graceful stop). */
int sup_run(int lfd, const struct sup_model *m);

/* For balance(): workers alive in the current generation, and how many are idle. */
int sup_current(int *idle);
/* Start n more workers (bounded by --max-workers) / stop one idle worker. */
void sup_spawn_more(int n);
void sup_retire_idle(void);

/* In a worker: note the request line being served (for crash reports). */
void sb_note_request(const char *line, size_t len);

#endif
