/* serve.c - one connection served to completion by the calling process.
 * The iterative, fork and prefork models all use this loop: conn_step() does
 * the work, poll() waits for the one fd it names until its deadline (that is
 * where header, body, keep-alive and write timeouts come from). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "handler.h"
#include "log.h"
#include "model.h"
#include "sig.h"

/* How often a waiting prefork worker looks whether the pool is full. */
#define RECHECK_MS 250

void serve_connection(int fd, const union net_addr *peer, int listener)
{
    struct conn c;
    conn_init(&c, fd, peer);
    if (transport_attach(&c, listener) < 0) { /* TLS (the handshake happens here, in conn_step) */
        conn_close(&c);
        return;
    }
    for (;;) {
        int w = conn_step(&c);
        if (w == CONN_DONE)
            break;
        conn_recheck(&c); /* every process busy now? shorter waits for slow clients */
        uint64_t now = now_ms();
        if (now >= c.deadline) {
            conn_timeout(&c);
            continue;
        }
        /* waiting on a producer's pipe (CGI, app stream): watch the client
         * too, for its FIN (POLLRDHUP: a client that leaves before a CGI
         * head must not keep the script running; POLLHUP alone needs both
         * directions closed), a reset or a hang-up. Once the FIN is known it
         * is the core's to act on: the client is no longer watched, so a
         * half- or fully-closed client does not wake us in a loop while the
         * pipe is silent (a write will tell of a reset). */
        struct pollfd p[2] = {{.fd = c.wait_fd, .events = w == CONN_READ ? POLLIN : POLLOUT},
                              {.fd = c.rdhup ? -1 : c.fd, .events = POLLRDHUP}};
        int n;
        for (;;) {
            /* CGI scripts whose response is over: reaped on the way, never
             * waited for; wake up when one's grace ends */
            int ms = (int)(c.deadline - now), reap_ms = h_cgi_reap(0);
            if (reap_ms >= 0 && reap_ms < ms)
                ms = reap_ms;
            if (conn_busy && c.wait_fd == c.fd && w == CONN_READ && ms > RECHECK_MS)
                ms = RECHECK_MS; /* waiting for the client: the pool may fill up meanwhile */
            n = poll(p, c.wait_fd != c.fd ? 2 : 1, ms);
            clock_release(); /* (a fork child's first wait: its clock runs now) */
            conn_recheck(&c);
            if (n != 0 || (now = now_ms()) >= c.deadline)
                break;
        }
        if (n > 0 && c.wait_fd != c.fd && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
            c.rdhup = 1;
        if (n > 0)
            c.readable = 1; /* (or writable, or a pipe's news: a read may tell) */
        if (n < 0 && errno != EINTR)
            break;
        if (n < 0 && sig_stop)
            conn_stop_soon(&c);
        /* n == 0: the deadline passed; the next round calls conn_timeout */
    }
    conn_close(&c);
    /* the next connection gets a process with no script left: wait (at most
     * a grace, REAP_GRACE_MS in h_cgi.c) for the scripts of this one */
    h_cgi_reap(1);
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
