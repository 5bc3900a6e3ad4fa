/* clock.h - time, at the bottom of the core (nginx's ngx_times.c): the
 * monotonic millisecond clock every deadline uses, and the cached Date of
 * response heads. Includes nothing of ours. */
#ifndef FH_CLOCK_H
#define FH_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC_COARSE in ms: a vDSO read, no syscall (a tick is ~4 ms). */
uint64_t now_ms(void);
/* The current time as an IMF-fixdate (29 chars), recomputed at most once a second. */
const char *http_date_now(void);
/* A fork child's clock until it first waits: now_ms() answers ms (the
 * parent's reading, just before the fork) and http_date_now() the Date the
 * parent made, until clock_release(). The child's own first reading would
 * fault in the vDSO's code page, one more fault per connection (issue 19);
 * and until it waits, less time passes than a tick of the coarse clock. */
void clock_hold(uint64_t ms);
void clock_release(void);
/* Format t as an IMF-fixdate into buf (>= 30 bytes). */
void http_date_fmt(time_t t, char *buf);

#endif
