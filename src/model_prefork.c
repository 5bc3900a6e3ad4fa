/* model_prefork.c - Apache-prefork style: a pool of worker processes, each
 * running the iterative loop (accept, serve one connection to completion) on
 * the listening socket they all inherited from the master.
 *
 * The pool grows while every worker is busy: the worker that takes the last
 * idle place signals the master (SIGUSR2), which forks more, up to
 * --max-workers, once it has seen the pool held: clients wait in the listen
 * queue and not one connection was accepted in GROW_CHECK_MS (connections
 * that last: keep-alive, slow clients, slow handlers). Short
 * connections (one request each) never hold it: one worker drains the queue
 * faster than 50 processes taking turns on a CPU would. It shrinks back to
 * --workers when workers sit idle. The master sees who is busy on the shared
 * scoreboard; it never asks a worker. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "model.h"
#include "sig.h"
#include "supervise.h"

#define GROW_CHECK_MS 20

static void set_state(int busy)
{
    static uint64_t asked; /* when this worker last signalled (at most one per check) */
    if (busy) {
        sb_self->state = SB_BUSY;
        if (__atomic_sub_fetch(&sb->idle, 1, __ATOMIC_SEQ_CST) <= 0) {
            uint64_t now = now_ms();
            if (now - asked >= GROW_CHECK_MS) {
                asked = now;
                kill(sb->master, SIGUSR2); /* nobody left in accept: the pool may grow */
            }
        }
    } else {
        sb_self->state = SB_IDLE;
        __atomic_add_fetch(&sb->idle, 1, __ATOMIC_SEQ_CST);
    }
}

/* Every worker taken, and the pool cannot grow (--max-workers): conn.c
 * then gives slow clients less time (shorter head, keep-alive and
 * lingering-close timeouts, --min-rate's short grace), so a few hundred
 * slowloris connections free their processes in about a second instead of
 * --header-timeout. (Not while the pool still grows: it has room.) */
static int pool_full(void)
{
    if (__atomic_load_n(&sb->idle, __ATOMIC_RELAXED) > 0)
        return 0;
    int live = 0;
    for (int i = 0; i < sb->nslots && i < SB_MAX_SLOTS; i++) {
        int st = sb->slot[i].state;
        live += st == SB_IDLE || st == SB_BUSY || st == SB_STARTING;
    }
    return live >= cfg.max_workers;
}

static int prefork_worker(int lfd)
{
    conn_busy = pool_full;
    set_state(0);
    sig_close_on_stop = lfd; /* a stop closes it: accept() cannot miss the stop */
    while (!sig_stop) {
        if (sig_reopen) {
            sig_reopen = 0;
            access_log_reopen();
        }
        union net_addr peer;
        int li; /* which listener (--listen) */
        int fd = net_accept_any(lfd, &peer, &li);
        if (fd < 0) {
            if (sig_stop)
                break;
            accept_error(errno); /* EINTR: SIGTERM (stop) or SIGUSR1 */
            continue;
        }
        set_state(1);
        sb_accepted(1);
        serve_connection(fd, &peer, li);
        sb_set_active(0);
        set_state(0);
    }
    __atomic_sub_fetch(&sb->idle, 1, __ATOMIC_SEQ_CST);
    sb_self->state = SB_STOPPING;
    return 0;
}

static int idle_ticks;

/* Connections the pool has accepted so far (every worker's counter). */
static uint64_t accepted_total(void)
{
    uint64_t t = 0;
    for (int i = 0; i < sb->nslots && i < SB_MAX_SLOTS; i++)
        t += sb->slot[i].accepted;
    return t;
}

/* On every master wake-up: grow when nobody is idle and the pool is held,
 * shrink when workers above --workers have been idle for 2 s. */
static void prefork_balance(void)
{
    int idle;
    int n = sup_current(&idle);
    int held = 0;
    if (idle == 0 && n < cfg.max_workers) {
        /* busy for a moment, or held: clients waiting, and not one
         * connection accepted in GROW_CHECK_MS? (signals wait meanwhile) */
        uint64_t before = accepted_total();
        poll(NULL, 0, GROW_CHECK_MS);
        n = sup_current(&idle);
        unsigned qn = 1, qm;
        if (net_listen_fd >= 0)
            net_listen_queue(net_listen_fd, &qn, &qm); /* (left at 1 if it cannot tell) */
        held = idle == 0 && accepted_total() == before && qn > 0;
    }
    if (held) {
        int more = n < 32 ? (n > 0 ? n : 1) : 32; /* double the pool, at most 32 a round */
        vlog("master: all %d workers busy; starting %d more", n, more);
        sup_spawn_more(more);
        idle_ticks = 0;
    } else if (n > cfg.workers && idle > 1) {
        /* after 2 s of surplus, retire half of it per tick (about 5 a second
         * at first), keeping one idle worker and at least --workers */
        if (++idle_ticks >= 10) {
            int surplus = n - cfg.workers < idle - 1 ? n - cfg.workers : idle - 1;
            for (int i = 0; i < (surplus + 1) / 2; i++)
                sup_retire_idle();
        }
    } else {
        idle_ticks = 0;
    }
}

static const struct sup_model prefork = {
    .name = "prefork",
    .setup = NULL,
    .worker = prefork_worker,
    .balance = prefork_balance,
};

int model_prefork(int lfd)
{
    return sup_run(lfd, &prefork);
}
