/* model_prefork.c - Apache-prefork style: a pool of worker processes, each
 * running the iterative loop (accept, serve one connection to completion) on
 * the listening socket they all inherited from the master.
 *
 * The pool grows while every worker is busy: the worker that takes the last
 * idle place signals the master (SIGUSR2), which forks more at once, up to
 * --max-workers. It shrinks back to --workers when workers sit idle. The
 * master sees who is busy on the shared scoreboard; it never asks a worker. */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "model.h"
#include "sig.h"
#include "supervise.h"

static void set_state(int busy)
{
    if (busy) {
        sb_self->state = SB_BUSY;
        if (__atomic_sub_fetch(&sb->idle, 1, __ATOMIC_SEQ_CST) <= 0)
            kill(sb->master, SIGUSR2); /* nobody left in accept: grow the pool now */
    } else {
        sb_self->state = SB_IDLE;
        __atomic_add_fetch(&sb->idle, 1, __ATOMIC_SEQ_CST);
    }
}

static int prefork_worker(int lfd)
{
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

/* On every master wake-up: grow when nobody is idle, shrink when workers
 * above --workers have been idle for 2 s. */
static void prefork_balance(void)
{
    int idle;
    int n = sup_current(&idle);
    if (idle == 0 && n < cfg.max_workers) {
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
