/* fork_child.h - where the globals a fork child writes live (issue 19).
 *
 * After fork() every page of the parent's data is shared copy-on-write: the
 * first write a child makes to one costs a page fault and a 4 KiB copy, on
 * every connection. The few globals a child writes on its way through a
 * request (the listener it forgets, the exchange it takes from the pool,
 * the clock it is handed) are all placed in .data, which is a few hundred
 * bytes: one page, one fault, whichever file they are defined in
 * (tests/integration/test_models.py checks the page). */
#ifndef FH_FORK_CHILD_H
#define FH_FORK_CHILD_H

#define FORK_CHILD_WRITES __attribute__((section(".data.fork_child")))

#endif
