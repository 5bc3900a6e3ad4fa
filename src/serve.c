/* serve.c - one connection served to completion by the calling process.
 * The iterative, fork and prefork models all use this loop: conn_step() does
 * the work, poll() waits for the one fd it names until its deadline (that is
 * where header, body, keep-alive and write timeouts come from). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "model.h"
#include "sig.h"

void serve_connection(int fd, const union net_addr *peer)
{
    struct conn c;
    conn_init(&c, fd, peer);
    for (;;) {
        int w = conn_step(&c);
        if (w == CONN_DONE)
            break;
        uint64_t now = now_ms();
        if (now >= c.deadline) {
            conn_timeout(&c);
            continue;
        }
        /* waiting on a producer's pipe (CGI, app stream): watch the client
         * too (errors and hang-ups only: events 0), so a reset is noticed
         * while the pipe is silent */
        struct pollfd p[2] = {{.fd = c.wait_fd, .events = w == CONN_READ ? POLLIN : POLLOUT},
                              {.fd = c.fd, .events = 0}};
        int n = poll(p, c.wait_fd != c.fd ? 2 : 1, (int)(c.deadline - now));
        if (n > 0)
            c.readable = 1; /* (or writable, or a pipe's news: a read may tell) */
        if (n < 0 && errno != EINTR)
            break;
        if (n < 0 && sig_stop)
            conn_stop_soon(&c);
        /* n == 0: the deadline passed; the next round calls conn_timeout */
    }
    conn_close(&c);
}

int accept_error(int err)
{
    switch (err) {
    case EINTR:        /* a signal (SIGCHLD, SIGTERM...): look at the flags, accept again */
    case ECONNABORTED: /* the client gave up while in the queue */
    case EPROTO:
    case EPERM:
        return 0;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        /* out of descriptors or memory: pause instead of spinning on accept */
        log_error("accept: %s; pausing 100 ms", strerror(err));
        poll(NULL, 0, 100);
        return 0;
    default:
        log_error("accept: %s", strerror(err));
        poll(NULL, 0, 100);
        return 0;
    }
}
