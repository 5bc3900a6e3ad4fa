/* net.c - listening and accepting sockets. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fork_child.h"

int net_listen_fd FORK_CHILD_WRITES = -1;

/* The port a socket is bound to (--port 0 binds an ephemeral one); 0 for a
 * UNIX socket. */
static int port_of(int fd)
{
    union net_addr a;
    socklen_t len = sizeof a;
    int port = 0;
    char ip[INET6_ADDRSTRLEN];
    if (getsockname(fd, &a.sa, &len) == 0)
        net_addr_str(&a, ip, sizeof ip, &port);
    return port;
}

int net_listen(const char *host, int port, int backlog, int *bound_port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "forkhttpd: --host %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        /* Restart on the same port at once, though old connections sit in TIME_WAIT. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (net_reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            (net_reuseport || listen(fd, backlog) == 0))
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "forkhttpd: cannot listen on %s port %d: %s\n", host, port, strerror(err));
        return -1;
    }
    *bound_port = port_of(fd);
    return fd;
}

int net_reuseport;

int net_listen_same(int bound_fd, int backlog)
{
    union net_addr a;
    socklen_t len = sizeof a;
    if (getsockname(bound_fd, &a.sa, &len) < 0)
        return -1;
    int fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, &a.sa, len) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_listen_unix(const char *path, int backlog, int mode, uid_t uid, gid_t gid)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path) {
        fprintf(stderr, "forkhttpd: --unix %s: path too long\n", path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "forkhttpd: --unix %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* left by an earlier run */
    /* born with --unix-mode (never wider for a moment), then given to --user */
    mode_t old = umask((mode_t)(0777 & ~mode));
    int r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (r < 0 || chmod(path, (mode_t)mode) < 0 ||
        (uid != (uid_t)-1 && lchown(path, uid, gid) < 0) || listen(fd, backlog) < 0) {
        fprintf(stderr, "forkhttpd: cannot listen on unix:%s: %s\n", path, strerror(errno));
        if (r == 0)
            unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

int net_inherited(int *bound_port)
{
    const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
    if (!pid || !n || atol(pid) != (long)getpid() || atoi(n) < 1)
        return -1;
    int fd = 3; /* SD_LISTEN_FDS_START */
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
        fprintf(stderr, "forkhttpd: LISTEN_FDS: fd 3 is not a stream socket\n");
        return -2;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    unsetenv("LISTEN_PID"); /* not for CGI programs */
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    *bound_port = port_of(fd);
    return fd;
}

int net_listen_queue(int lfd, unsigned *now, unsigned *max)
{
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    if (lfd < 0 || getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
        return -1;
    *now = ti.tcpi_unacked; /* on a listener: the accept queue now, and its limit */
    *max = ti.tcpi_sacked;
    return 0;
}

long net_queue_seen_now = -1, net_queue_seen_max = -1;

void net_queue_remember(int lfd)
{
    unsigned now, max;
    if (net_listen_queue(lfd, &now, &max) == 0) {
        net_queue_seen_now = now;
        net_queue_seen_max = max;
    }
}

int net_accept(int lfd, union net_addr *peer)
{
    socklen_t len = sizeof *peer;
    int fd = accept4(lfd, &peer->sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0 && net_tls_listener() >= 0) {
        int one = 1;
        /* TLS writes on its own (handshake flights, session tickets): no
         * Nagle. Plain connections get TCP_NODELAY from conn.c, only before
         * a write that Nagle could hold (the second on a connection). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

ssize_t net_peek(int fd, void *buf, size_t n)
{
    return recv(fd, buf, n, MSG_PEEK);
}

ssize_t net_take(int fd, void *buf, size_t n)
{
    return recv(fd, buf, n, 0);
}

void net_addr_str(const union net_addr *a, char *buf, size_t cap, int *port)
{
    if (a->sa.sa_family == AF_INET6) {
        const struct in6_addr *ip = &a->in6.sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(ip))
            inet_ntop(AF_INET, &ip->s6_addr[12], buf, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, ip, buf, (socklen_t)cap);
        if (port)
            *port = ntohs(a->in6.sin6_port);
    } else if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in4.sin_addr, buf, (socklen_t)cap);
        if (port)
            *port = ntohs(a->in4.sin_port);
    } else if (a->sa.sa_family == AF_UNIX) {
        snprintf(buf, cap, "unix");
        if (port)
            *port = 0;
    } else {
        snprintf(buf, cap, "-");
        if (port)
            *port = 0;
    }
}

/* ---- several listeners (--listen) ---- */

struct net_listener net_listeners[NET_MAX_LISTENERS];
int net_nlisteners;

static struct {
    char host[100];
    int port;
    int tls;
    int proxy;
} specs[NET_MAX_LISTENERS - 1];
static int nspecs;
int net_proxy_main;

void net_listen_spec(const char *spec)
{
    const char *s = spec, *colon;
    char host[sizeof specs[0].host];
    if (nspecs == NET_MAX_LISTENERS - 1) {
        fprintf(stderr, "forkhttpd: --listen: at most %d listeners\n", NET_MAX_LISTENERS - 1);
        exit(2);
    }
    if (*s == '[') { /* [v6]:port */
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            goto bad;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host || memchr(s, ':', (size_t)(colon - s)))
            goto bad;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || port < 0 || port > 65535 || colon[1] == '-' || colon[1] == '+')
        goto bad;
    int tls = 0, proxy = 0;
    while (*end) { /* "/tls", "/proxy", both in either order */
        if (strncmp(end, "/tls", 4) == 0 && !tls) {
            tls = 1;
            end += 4;
        } else if (strncmp(end, "/proxy", 6) == 0 && !proxy) {
            proxy = 1;
            end += 6;
        } else {
            goto bad;
        }
    }
    snprintf(specs[nspecs].host, sizeof specs[nspecs].host, "%s", host[0] ? host : "0.0.0.0");
    specs[nspecs].port = (int)port;
    specs[nspecs].tls = tls;
    specs[nspecs].proxy = proxy;
    nspecs++;
    return;
bad:
    fprintf(stderr, "forkhttpd: --listen: expected HOST:PORT, then /tls, /proxy or both "
                    "([::1]:PORT for IPv6): '%s'\n", spec);
    exit(2);
}

int net_spec_wants_tls(void)
{
    for (int i = 0; i < nspecs; i++)
        if (specs[i].tls)
            return 1;
    return 0;
}

int net_spec_wants_proxy(void)
{
    for (int i = 0; i < nspecs; i++)
        if (specs[i].proxy)
            return 1;
    return 0;
}

void net_listener_main(int fd, int tls, const char *where, int port)
{
    net_listeners[0].fd = fd;
    net_listeners[0].tls = tls;
    net_listeners[0].proxy = net_proxy_main;
    net_listeners[0].port = port;
    snprintf(net_listeners[0].where, sizeof net_listeners[0].where, "%s", where);
    net_nlisteners = 1;
}

int net_listen_extra(int backlog)
{
    for (int i = 0; i < nspecs; i++) {
        int port = 0;
        int fd = net_listen(specs[i].host, specs[i].port, backlog, &port);
        if (fd < 0)
            return -1;
        struct net_listener *l = &net_listeners[net_nlisteners++];
        l->fd = fd;
        l->tls = specs[i].tls;
        l->proxy = specs[i].proxy;
        l->port = port;
        snprintf(l->where, sizeof l->where, "%.100s", specs[i].host);
    }
    if (net_nlisteners > 1) /* several: poll, then accept; never block on a lost race */
        for (int i = 0; i < net_nlisteners; i++)
            fcntl(net_listeners[i].fd, F_SETFL, fcntl(net_listeners[i].fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

int net_tls_listener(void)
{
    for (int i = 0; i < net_nlisteners; i++)
        if (net_listeners[i].tls)
            return i;
    return -1;
}

void net_close_extra(void)
{
    for (int i = 1; i < net_nlisteners; i++) {
        if (net_listeners[i].fd >= 0)
            close(net_listeners[i].fd);
        net_listeners[i].fd = -1;
    }
}

int net_accept_any(int lfd, union net_addr *peer, int *which)
{
    *which = 0;
    if (net_nlisteners <= 1)
        return net_accept(lfd, peer);
    struct pollfd p[NET_MAX_LISTENERS];
    for (int i = 0; i < net_nlisteners; i++) {
        p[i].fd = i == 0 ? lfd : net_listeners[i].fd;
        p[i].events = POLLIN;
        p[i].revents = 0;
    }
    if (poll(p, (nfds_t)net_nlisteners, -1) < 0)
        return -1;
    static int next; /* start where the last one left off: no listener starves */
    for (int k = 0; k < net_nlisteners; k++) {
        int i = (next + k) % net_nlisteners;
        if (p[i].revents & POLLNVAL) { /* closed by a stop signal */
            errno = EBADF;
            return -1;
        }
        if (!(p[i].revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        int fd = net_accept(p[i].fd, peer);
        if (fd >= 0) {
            *which = i;
            next = i + 1;
            return fd;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
    }
    errno = EINTR; /* another process took it: look at the flags, poll again */
    return -1;
}
