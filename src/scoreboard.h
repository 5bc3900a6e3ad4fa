/* scoreboard.h - the shared-memory board every model writes its counters to
 * and the status page (and the master's crash reports) read. Its own unit at
 * the bottom of the core: conn.c, the handlers and the models call the small
 * functions below; none of them needs to know who supervises whom. */
#ifndef FH_SCOREBOARD_H
#define FH_SCOREBOARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "log.h" /* struct log_limit */

#define SB_MAX_SLOTS 4096

enum sb_state { SB_FREE = 0, SB_STARTING, SB_IDLE, SB_BUSY, SB_STOPPING };

/* The limits that shed load, each a counter on the status page (its name
 * there in sb_shed_name). */
enum sb_shed {
    SHED_413,        /* a body over --max-body / --max-unread-body */
    SHED_414,        /* a request-line over --max-line */
    SHED_431,        /* a head over --max-header-size / --max-headers */
    SHED_CGI_BUSY,   /* 503: --cgi-max scripts running */
    SHED_SPOOL,      /* 503: --spool-budget full */
    SHED_MIN_RATE,   /* 408: a head or body slower than --min-rate */
    SHED_RECLAIMED,  /* an idle keep-alive connection closed to make room (--max-conns) */
    SHED_FULL,       /* stopped accepting: --max-conns and nothing idle to reclaim */
    SB_NSHED
};
extern const char *const sb_shed_name[SB_NSHED];
/* Their warn lines' rate limits (warn_limited), shared by every process so
 * that a fork child per connection or 256 prefork workers still write one
 * line a second per limit; one more for "every process busy". */
#define SB_LIMIT_BUSY SB_NSHED
#define SB_NLIMITS (SB_NSHED + 1)

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
    /* event workers: the longest loop iteration (from epoll_wait's return to
     * the next epoll_wait), in us, since the worker started and over the
     * last 10 to 20 s (this 10-second window and the one before): a handler
     * that blocks stalls every connection of its worker, and shows here.
     * 0 in the blocking models, which have no loop to stall. */
    volatile uint32_t loop_max_us;
    volatile uint32_t loop_recent_us;
    volatile uint64_t tls_handshakes; /* TLS handshakes completed (tls.c; atomic adds) */
    volatile uint64_t tls_resumed;    /* ...of which resumed a session */
    volatile uint64_t tls_failed;     /* handshakes that failed (a warn line each) */
    /* event workers with --threads (app_pool.c): the app pool's threads,
     * how many run a call, calls queued, calls stuck past --app-timeout;
     * calls refused with 503 (queue full) and answered 504 (timeout) */
    volatile uint32_t app_threads, app_busy, app_queued, app_stuck;
    volatile uint64_t app_rejected, app_timeouts;
    /* load shed by a limit (docs/hardening.md, "Shedding load"): how often
     * each answered or acted, and whether this event worker is full now */
    volatile uint64_t shed[SB_NSHED];
    volatile int full;         /* event: at --max-conns with nothing idle: not accepting */
    char request[120];         /* the request line being served, for crash reports */
};

struct scoreboard {
    volatile pid_t master;
    volatile int nslots;
    time_t started;            /* for the uptime */
    volatile uint64_t reaped;  /* children reaped by the master (or the fork model's parent) */
    int idle; /* prefork: workers waiting in accept (atomic updates) */
    struct log_limit limits[SB_NLIMITS]; /* sb_limit() */
    volatile int draining; /* --drain: the master got SIGTERM; --health says 503 (conn.c) */
    struct sb_slot slot[SB_MAX_SLOTS];
};

/* This process's slot, or NULL outside a supervised worker. */
extern struct sb_slot *sb_self;
extern struct scoreboard *sb;

/* Create the scoreboard (shared memory) before any fork; every model has
 * one, for the status page. In iterative and fork, slot 0 is the server
 * (fork's children count their requests there too). 0 or -1. */
int sb_init(void);
void sb_free(void);

/* In a worker: a request begins (counted; its line noted for crash reports). */
void sb_count_request(const char *line, size_t len);
/* In a worker: note the request line being served (for crash reports). */
void sb_note_request(const char *line, size_t len);
/* A CGI script started / was reaped (the status page's "cgi" column). */
void sb_cgi_started(void);
void sb_cgi_ended(void);
/* A connection was accepted; this many are open now. */
void sb_accepted(uint64_t active);
void sb_set_active(uint64_t active);
void sb_set_state(enum sb_state s);
/* A limit shed load once (atomic: the fork model's children share slot 0). */
void sb_shed(enum sb_shed which);
/* The shared rate limit of limit i's warn line (SB_LIMIT_BUSY or an enum
 * sb_shed), for warn_limited; a process-local one without a scoreboard. */
struct log_limit *sb_limit(int i);
/* Event workers: one loop iteration took us microseconds (cheap: the shared
 * slot is written only when a maximum grows). */
void sb_loop_time(uint32_t us);
/* Event workers: a new window for loop_recent_us begins (every SB_LOOP_WINDOW_MS). */
#define SB_LOOP_WINDOW_MS 10000
void sb_loop_window(void);

#endif
