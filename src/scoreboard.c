/* scoreboard.c - the shared counters (scoreboard.h). Plain or relaxed atomic
 * stores to aligned words: a reader may see a slightly stale number, never a
 * torn one. In the fork model every child writes slot 0, hence the atomics. */
#include "scoreboard.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fork_child.h"
#include "log.h"

struct scoreboard *sb;
struct sb_slot *sb_self FORK_CHILD_WRITES; /* (a fork child may clear it) */

int sb_init(void)
{
    void *p = mmap(NULL, sizeof *sb, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("mmap scoreboard:");
        return -1;
    }
    sb = p;
    sb->master = getpid();
    sb->started = time(NULL);
    return 0;
}

void sb_free(void)
{
    if (sb)
        munmap(sb, sizeof *sb);
    sb = NULL;
    sb_self = NULL;
}

void sb_note_request(const char *line, size_t len)
{
    if (!sb_self)
        return;
    if (len > sizeof sb_self->request - 1)
        len = sizeof sb_self->request - 1;
    memcpy(sb_self->request, line, len);
    sb_self->request[len] = 0;
}

void sb_count_request(const char *line, size_t len)
{
    if (!sb_self)
        return;
    __atomic_add_fetch(&sb_self->requests, 1, __ATOMIC_RELAXED); /* fork: shared by children */
    sb_note_request(line, len);
}

void sb_cgi_started(void)
{
    if (sb_self)
        __atomic_add_fetch(&sb_self->cgi, 1, __ATOMIC_RELAXED);
}

void sb_cgi_ended(void)
{
    if (sb_self)
        __atomic_sub_fetch(&sb_self->cgi, 1, __ATOMIC_RELAXED);
}

void sb_accepted(uint64_t active)
{
    if (!sb_self)
        return;
    sb_self->accepted++;
    sb_self->active = active;
}

void sb_set_active(uint64_t active)
{
    if (sb_self)
        sb_self->active = active;
}

const char *const sb_shed_name[SB_NSHED] = {
    [SHED_413] = "shed_413",
    [SHED_414] = "shed_414",
    [SHED_431] = "shed_431",
    [SHED_CGI_BUSY] = "shed_cgi_503",
    [SHED_SPOOL] = "shed_spool_503",
    [SHED_MIN_RATE] = "shed_slow_408",
    [SHED_RECLAIMED] = "idle_reclaimed",
    [SHED_FULL] = "accept_paused",
};

void sb_shed(enum sb_shed which)
{
    if (sb_self && which < SB_NSHED)
        __atomic_add_fetch(&sb_self->shed[which], 1, __ATOMIC_RELAXED);
}

struct log_limit *sb_limit(int i)
{
    static struct log_limit local[SB_NLIMITS];
    if (i < 0 || i >= SB_NLIMITS)
        i = SB_LIMIT_BUSY;
    return sb ? &sb->limits[i] : &local[i];
}

void sb_set_state(enum sb_state s)
{
    if (sb_self)
        sb_self->state = s;
}

/* This worker's longest iteration in this window and in the one before:
 * loop_recent_us is the larger of the two, so it always covers at least the
 * last full window. */
static uint32_t loop_cur, loop_prev;

void sb_loop_time(uint32_t us)
{
    if (!sb_self || us <= loop_cur)
        return;
    loop_cur = us;
    if (us > loop_prev)
        sb_self->loop_recent_us = us;
    if (us > sb_self->loop_max_us)
        sb_self->loop_max_us = us;
}

void sb_loop_window(void)
{
    loop_prev = loop_cur;
    loop_cur = 0;
    if (sb_self)
        sb_self->loop_recent_us = loop_prev;
}
