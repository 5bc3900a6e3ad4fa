/* transport.c - the plain transport: the socket syscalls themselves; and which
 * transport a new connection gets (its listener's). TLS is in tls.c. */
#include "transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "net.h"
#include "tls.h"

static ssize_t plain_recv(struct conn *c, void *buf, size_t n)
{
    return recv(c->fd, buf, n, 0);
}

static ssize_t plain_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    return writev(c->fd, iov, iovcnt); /* SIGPIPE is ignored (sig.c): EPIPE instead */
}

static ssize_t plain_sendfile(struct conn *c, int in_fd, off_t *off, size_t n)
{
    return sendfile(c->fd, in_fd, off, n);
}

static void plain_shutdown_wr(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
}

static int plain_cork(struct conn *c, int on)
{
    return setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

static int plain_broken(struct conn *c)
{
    char b;
    ssize_t p = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return p < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

const struct transport transport_plain = {
    .name = "plain",
    .recv = plain_recv,
    .writev = plain_writev,
    .sendfile = plain_sendfile,
    .shutdown_wr = plain_shutdown_wr,
    .cork = plain_cork,
    .broken = plain_broken,
    .close = NULL,
    .facts = NULL,
};

int transport_attach(struct conn *c, int listener)
{
    if (listener < 0 || listener >= net_nlisteners)
        return 0;
    c->proxy = (unsigned char)net_listeners[listener].proxy; /* conn.c reads it first */
    if (net_listeners[listener].tls)
        return tls_attach(c);
    /* (net.c's question first: without a TLS listener a fork child does not
     * fault in tls_load.c's code page to ask the second) */
    if (net_tls_listener() >= 0 && tls_redirect_on())
        c->policy = TP_POLICY_REDIRECT;
    return 0;
}
