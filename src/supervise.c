/* supervise.c - the master of the prefork and event models (nginx's protocol).
 *
 * The master binds nothing itself (main.c did), forks the workers, then only
 * supervises: every signal it cares about is blocked except inside
 * sigsuspend(), and the handlers only set flags, so all the work happens in
 * ordinary code. It reaps with waitpid(-1, WNOHANG) until nothing is left,
 * respawns a worker that died (with a back-off if they die in a loop), never
 * while stopping, and on a stop escalates TERM -> KILL after --grace. */
#include "supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "clock.h"
#include "log.h"
#include "sig.h"
#include "tls.h"
#include "worker.h"

static volatile sig_atomic_t got_chld, got_alrm, got_usr2;

static void on_master_signal(int signo)
{
    if (signo == SIGCHLD)
        got_chld = 1;
    else if (signo == SIGALRM)
        got_alrm = 1;
    else if (signo == SIGUSR2)
        got_usr2 = 1;
}

/* The master's own view of each slot (the scoreboard is the workers' view). */
static struct {
    pid_t pid;
    int gen;
    int retiring; /* asked to stop: not respawned */
    uint64_t started;
} w[SB_MAX_SLOTS];

static const struct sup_model *model;
static int listen_fd;
static int gen;
static int stopping;
static uint64_t stop_deadline;
static uint64_t drain_until; /* --drain: the graceful stop begins then (0: not draining) */
static int killed;
static int fast_fails;
static int respawn_pending;
static uint64_t respawn_at;
static sigset_t wait_mask; /* the mask inside sigsuspend: our signals let through */

static int worker_count(int g, int *idle)
{
    int n = 0, i_ = 0;
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        if (w[i].pid <= 0 || (g >= 0 && (w[i].retiring || w[i].gen != g)))
            continue; /* g < 0: every live worker, retiring ones included */
        n++;
        /* a worker still starting (an app importing, say) will be idle:
         * counting it busy would make prefork spawn more and more */
        if (sb->slot[i].state == SB_IDLE || sb->slot[i].state == SB_STARTING)
            i_++;
    }
    if (idle)
        *idle = i_;
    return n;
}

int sup_current(int *idle)
{
    return worker_count(gen, idle);
}

static void worker_main(int slot)
{
    /* Die with the master: an orphaned worker would keep the port forever. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != sb->master)
        _exit(0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sig_install();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    sb_self = &sb->slot[slot];
    worker_begin();
    int rc = model->worker(listen_fd);
    worker_end(WORKER_FREE);
    sb_self->state = SB_FREE;
    config_free();
    exit(rc);
}

static int spawn(void)
{
    int slot = -1;
    for (int i = 0; i < SB_MAX_SLOTS; i++)
        if (w[i].pid == 0) {
            slot = i;
            break;
        }
    if (slot < 0)
        return -1;
    struct sb_slot *s = &sb->slot[slot];
    memset(s, 0, sizeof *s);
    s->state = SB_STARTING;
    s->gen = gen;
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork a worker:");
        s->state = SB_FREE;
        return -1;
    }
    if (pid == 0) {
        s->pid = getpid();
        worker_main(slot);
    }
    s->pid = pid;
    w[slot].pid = pid;
    w[slot].gen = gen;
    w[slot].retiring = 0;
    w[slot].started = now_ms();
    if (slot >= sb->nslots)
        sb->nslots = slot + 1;
    vlog("master %d: started worker PID %d (slot %d, generation %d)", (int)getpid(), (int)pid,
         slot, gen);
    return slot;
}

void sup_spawn_more(int n)
{
    for (int i = 0; i < n && worker_count(gen, NULL) < cfg.max_workers; i++)
        if (spawn() < 0)
            break;
}

void sup_retire_idle(void)
{
    for (int i = SB_MAX_SLOTS - 1; i >= 0; i--) {
        if (w[i].pid > 0 && !w[i].retiring && w[i].gen == gen && sb->slot[i].state == SB_IDLE) {
            w[i].retiring = 1;
            kill(w[i].pid, SIGTERM);
            vlog("master: retiring idle worker PID %d", (int)w[i].pid);
            return;
        }
    }
}

/* --threads: a worker whose app calls got stuck (running past --app-timeout;
 * a thread cannot be killed) in --app-stuck of its threads is replaced: a new
 * worker first, then the old one stops gracefully (its other requests finish;
 * it leaves without waiting for the stuck calls). A slow *client* never
 * counts: the pool's threads never wait on the network. */
static void recycle_stuck(void)
{
    if (!cfg.threads)
        return;
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        if (w[i].pid <= 0 || w[i].retiring || w[i].gen != gen)
            continue;
        unsigned stuck = __atomic_load_n(&sb->slot[i].app_stuck, __ATOMIC_RELAXED);
        if (stuck < (unsigned)cfg.app_stuck)
            continue;
        warn("worker PID %d has %u app call%s stuck past --app-timeout (--app-stuck %d): "
             "replacing it",
             (int)w[i].pid, stuck, stuck == 1 ? "" : "s", cfg.app_stuck);
        w[i].retiring = 1;
        spawn();
        kill(w[i].pid, SIGTERM);
    }
}

static void signal_workers(int signo, int only_old_gen)
{
    for (int i = 0; i < SB_MAX_SLOTS; i++)
        if (w[i].pid > 0 && (!only_old_gen || w[i].gen != gen))
            kill(w[i].pid, signo);
}

static void reap(void)
{
    pid_t pid;
    int st;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        int slot = -1;
        for (int i = 0; i < SB_MAX_SLOTS; i++)
            if (w[i].pid == pid) {
                slot = i;
                break;
            }
        if (slot < 0)
            continue;
        int expected = stopping || w[slot].retiring || w[slot].gen != gen;
        int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!clean || !expected) {
            const char *req = sb->slot[slot].request;
            if (WIFSIGNALED(st))
                log_error("worker PID %d killed by signal %d (%s)%s%s%s", (int)pid, WTERMSIG(st),
                     strsignal(WTERMSIG(st)), req[0] ? " while serving \"" : "", req,
                     req[0] ? "\"" : "");
            else
                log_error("worker PID %d exited with status %d", (int)pid, WEXITSTATUS(st));
        } else {
            vlog("master: reaped worker PID %d, exit status %d", (int)pid, WEXITSTATUS(st));
        }
        if (!expected) {
            /* a worker that dies young again and again: back off */
            if (now_ms() - w[slot].started < 1000)
                fast_fails++;
            else
                fast_fails = 0;
            int delay = fast_fails ? 100 << (fast_fails < 7 ? fast_fails - 1 : 6) : 0;
            if (!respawn_pending || now_ms() + (uint64_t)delay > respawn_at)
                respawn_at = now_ms() + (uint64_t)delay;
            respawn_pending++;
            if (delay)
                log_error("workers are dying quickly; respawning in %d ms", delay);
        }
        w[slot].pid = 0;
        sb->reaped++;
        if (sb->slot[slot].state == SB_IDLE) /* died while counted idle (prefork) */
            __atomic_sub_fetch(&sb->idle, 1, __ATOMIC_SEQ_CST);
        sb->slot[slot].state = SB_FREE;
        sb->slot[slot].pid = 0;
    }
}

static void begin_stop(void)
{
    stopping = 1;
    respawn_pending = 0;
    stop_deadline = now_ms() + (uint64_t)cfg.grace;
    log_info("stopping: workers finish their requests (grace %d ms)", cfg.grace);
    signal_workers(SIGTERM, 0);
}

static void reload(void)
{
    /* New workers first: they accept on the same listening socket at once,
     * so no connection waits while the old ones drain. */
    gen++;
    log_info("restarting workers (generation %d)", gen);
    tls_reload(); /* the new workers get the certificates as they are now (tls.h) */
    respawn_pending = 0;
    for (int i = 0; i < cfg.workers; i++)
        spawn();
    signal_workers(SIGTERM, 1);
}

int sup_run(int lfd, const struct sup_model *m)
{
    model = m;
    listen_fd = lfd;
    if (!sb && sb_init() < 0)
        return 1;
    if (m->setup)
        m->setup(lfd);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_master_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    sigset_t set, old;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGALRM, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, &old);
    wait_mask = old;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigdelset(&wait_mask, sigs[i]);

    /* a tick for the grace deadline, back-off and pool balance */
    struct itimerval it = {{0, 200000}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, NULL);

    for (int i = 0; i < cfg.workers; i++)
        spawn();
    if (m->started)
        m->started();

    for (;;) {
        sigsuspend(&wait_mask); /* the only place the master waits */
        got_chld = got_alrm = got_usr2 = 0;
        if (sig_stop && !stopping && cfg.drain > 0 && !drain_until) {
            /* --drain: --health says 503 (sb->draining, conn.c) while the
             * workers serve on, so a balancer takes this instance out before
             * it stops listening; the tick (SIGALRM) ends it */
            drain_until = now_ms() + (uint64_t)cfg.drain;
            sb->draining = 1;
            log_info("draining: --health answers 503 for %d ms, then the graceful stop", cfg.drain);
        }
        if (sig_stop && !stopping && (!drain_until || now_ms() >= drain_until))
            begin_stop(); /* first: workers that exit on the same TERM are not respawned */
        reap();
        if (sig_reload) {
            sig_reload = 0;
            if (!stopping)
                reload();
        }
        if (sig_reopen) {
            sig_reopen = 0;
            access_log_reopen();
            signal_workers(SIGUSR1, 0);
        }
        if (stopping) {
            if (worker_count(-1, NULL) == 0 && waitpid(-1, NULL, WNOHANG) <= 0)
                break;
            if (!killed && now_ms() >= stop_deadline) {
                warn("grace period over: killing the remaining workers");
                signal_workers(SIGKILL, 0);
                killed = 1;
            }
            continue;
        }
        if (respawn_pending && now_ms() >= respawn_at) {
            int n = respawn_pending;
            respawn_pending = 0;
            for (int i = 0; i < n && worker_count(gen, NULL) < cfg.max_workers; i++)
                spawn();
        }
        recycle_stuck();
        if (m->balance)
            m->balance();
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return 0;
}
