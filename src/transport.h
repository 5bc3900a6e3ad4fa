/* transport.h - the seam between the connection state machine and the bytes
 * on the wire. conn.c never calls recv/send/sendfile/shutdown itself: it goes
 * through c->tp, so another transport (TLS, a PROXY-protocol preamble, the
 * fuzzer's scripted socket) plugs in without touching the state machine.
 * Every call has the return convention of the syscall it stands for: >= 0
 * done, -1 with errno (EAGAIN: would block; a "wants read/write" of a TLS
 * library is reported the same way). */
#ifndef FH_TRANSPORT_H
#define FH_TRANSPORT_H

#include <sys/types.h>
#include <sys/uio.h>

struct conn;

struct transport {
    const char *name;
    ssize_t (*recv)(struct conn *c, void *buf, size_t n);
    ssize_t (*writev)(struct conn *c, const struct iovec *iov, int iovcnt);
    /* like sendfile(2): from in_fd at *off, advancing it */
    ssize_t (*sendfile)(struct conn *c, int in_fd, off_t *off, size_t n);
    /* no more bytes will be sent (the lingering close) */
    void (*shutdown_wr)(struct conn *c);
    /* batch the next writes into full segments (on) / push what is left (off) */
    int (*cork)(struct conn *c, int on);
    /* has the peer reset the connection? (checked while a producer is silent) */
    int (*broken)(struct conn *c);
};

/* Plain TCP (and Unix sockets): the syscalls on c->fd. */
extern const struct transport transport_plain;

#endif
