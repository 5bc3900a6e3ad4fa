/* net.c - listening and accepting sockets. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int net_listen_fd = -1;

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

int net_listen_unix(const char *path, int backlog)
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
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, backlog) < 0) {
        fprintf(stderr, "forkhttpd: cannot listen on unix:%s: %s\n", path, strerror(errno));
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

int net_accept(int lfd, union net_addr *peer)
{
    socklen_t len = sizeof *peer;
    int fd = accept4(lfd, &peer->sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        int one = 1;
        /* Responses are written whole (head and small body in one write):
         * Nagle would only delay the last segment of a pipelined batch. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
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
