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
struct tls_facts; /* handler.h: protocol, cipher, SNI as plain strings */

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
    /* free the transport's state (before the socket is closed); NULL: none */
    void (*close)(struct conn *c);
    /* what a handler may know of the connection's security (NULL: plain) */
    const struct tls_facts *(*facts)(struct conn *c);
    /* send what the transport still holds of earlier writes (TLS records
     * the socket did not take): 0 when nothing is left, -1 with errno
     * (EAGAIN: wait for writable). NULL: it never holds any. */
    int (*flush)(struct conn *c);
};

/* A transport that must wait for the other direction than the call's own (a
 * TLS read that has to write a handshake message, a TLS write that has to
 * read) says so in c->tp_want (CONN_READ/CONN_WRITE) when it reports EAGAIN;
 * conn_step then returns that, so every model waits for the right event. */

/* Per-listener policies (c->policy), applied to every request of the connection. */
enum {
    TP_POLICY_NONE = 0,
    TP_POLICY_SPEAKS_HTTPS, /* plain HTTP arrived on a TLS port: 400 "this port speaks HTTPS" */
    TP_POLICY_REDIRECT,     /* --redirect-https on a plain listener: 308 to the TLS one */
};

/* Set up c for the listener it was accepted on (net_listeners[listener]):
 * TLS or plain, and the listener's policy. 0, or -1: close the connection. */
int transport_attach(struct conn *c, int listener);

/* Plain TCP (and Unix sockets): the syscalls on c->fd. */
extern const struct transport transport_plain;

#endif
