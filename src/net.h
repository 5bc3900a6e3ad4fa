/* net.h - the only file that calls socket/bind/listen/accept. */
#ifndef FH_NET_H
#define FH_NET_H

#include <netinet/in.h>
#include <sys/socket.h>

/* A peer or local address, small enough to keep per connection. */
union net_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* socket -> SO_REUSEADDR -> bind -> listen(backlog). Returns the listening fd
 * (close-on-exec, blocking) and stores the bound port (for --port 0) in
 * *bound_port, or prints one line and returns -1. */
int net_listen(const char *host, int port, int backlog, int *bound_port);

/* --accept reuseport: net_listen() only binds (with SO_REUSEPORT, reserving
 * the port) and each event worker opens its own listener on the same
 * address with net_listen_same(); the kernel spreads connections over them. */
extern int net_reuseport;
int net_listen_same(int bound_fd, int backlog);

/* Listen on a UNIX socket at path (a stale socket file there is replaced). */
int net_listen_unix(const char *path, int backlog);

/* systemd socket activation: the inherited listener (fd 3) when LISTEN_PID
 * is this process and LISTEN_FDS >= 1; else -1. Its port goes to *bound_port. */
int net_inherited(int *bound_port);

/* The listening socket (for the status page's queue length), or -1. */
extern int net_listen_fd;

/* accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC: every connection socket is
 * non-blocking (the core never blocks in a syscall) and not inherited by CGI
 * programs. Returns the fd or -1 with errno. */
int net_accept(int lfd, union net_addr *peer);

/* "1.2.3.4" / "::1" (IPv4-mapped IPv6 shown as IPv4) and the port. */
void net_addr_str(const union net_addr *a, char *buf, size_t cap, int *port);

#endif
