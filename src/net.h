/* net.h - the only file that calls socket/bind/listen/accept. */
#ifndef FH_NET_H
#define FH_NET_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

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

/* Listen on a UNIX socket at path (a stale socket file there is replaced),
 * with permissions mode (--unix-mode), owned by uid:gid unless uid is -1. */
int net_listen_unix(const char *path, int backlog, int mode, uid_t uid, gid_t gid);

/* systemd socket activation: the inherited listener (fd 3) when LISTEN_PID
 * is this process and LISTEN_FDS >= 1; else -1. Its port goes to *bound_port. */
int net_inherited(int *bound_port);

/* The listening socket (for the status page's queue length), or -1. */
extern int net_listen_fd;

/* Every listener of the server: [0] is the main one (--host/--port, --unix or
 * systemd's), the others come from --listen HOST:PORT[/tls]. All workers of
 * every model serve all of them. */
#define NET_MAX_LISTENERS 16
struct net_listener {
    int fd;
    int tls;          /* speaks HTTPS */
    int proxy;        /* expects a PROXY protocol header first (conn.c, proxy.h) */
    int port;         /* the bound port (0 for a UNIX socket) */
    char where[128];  /* for the banner: the host as given, "unix:PATH"... */
};
extern struct net_listener net_listeners[NET_MAX_LISTENERS];
extern int net_nlisteners;
/* --listen HOST:PORT, with /tls, /proxy or both ("[::1]:PORT" for IPv6):
 * remembered for net_listen_extra(). Prints one line and exits 2 when
 * malformed. */
void net_listen_spec(const char *spec);
/* Does any --listen ask for /tls? For /proxy? */
int net_spec_wants_tls(void);
int net_spec_wants_proxy(void);
/* --proxy-protocol: the main listener expects PROXY headers too. */
extern int net_proxy_main;
/* Record the main listener as net_listeners[0]. */
void net_listener_main(int fd, int tls, const char *where, int port);
/* Bind every --listen (after the main one). 0, or -1 after one line on stderr. */
int net_listen_extra(int backlog);
/* The first TLS listener's index, or -1. */
int net_tls_listener(void);
/* Close the listeners other than [0] (a fork-model child; the end of main). */
void net_close_extra(void);
/* The blocking models' accept: with one listener, net_accept(lfd); with
 * several, poll() them all (lfd stands for [0]) and accept from a ready one.
 * *which gets the listener's index. -1 with errno as net_accept (EINTR also
 * when another process took the connection). */
int net_accept_any(int lfd, union net_addr *peer, int *which);

/* A TCP listener's accept queue: connections waiting now, and the limit
 * (the backlog). 0, or -1 (not TCP). */
int net_listen_queue(int lfd, unsigned *now, unsigned *max);
/* The fork model's child closes the listener: just before, it remembers the
 * queue as it was at its accept (the status page shows that); -1 unknown. */
extern long net_queue_seen_now, net_queue_seen_max;
void net_queue_remember(int lfd);

/* accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC: every connection socket is
 * non-blocking (the core never blocks in a syscall) and not inherited by CGI
 * programs. Returns the fd or -1 with errno. */
int net_accept(int lfd, union net_addr *peer);

/* The PROXY preamble is read beneath every transport (before a TLS
 * handshake), from the socket itself: look at what has arrived without
 * taking it, then take exactly the header's bytes. recv(2)'s convention. */
ssize_t net_peek(int fd, void *buf, size_t n);
ssize_t net_take(int fd, void *buf, size_t n);

/* "1.2.3.4" / "::1" (IPv4-mapped IPv6 shown as IPv4) and the port. */
void net_addr_str(const union net_addr *a, char *buf, size_t cap, int *port);

#endif
