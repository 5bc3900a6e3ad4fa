/* model_iterative.c - the tutorial's first server (parts 1-3a/3b):
 *
 *   socket -> bind -> listen(backlog) -> loop { accept; serve; close }
 *
 * One client at a time: while one connection is served (keep-alive included,
 * bounded by --keepalive-timeout), the next ones wait in the listen queue,
 * whose length is the backlog. */
#include <errno.h>
#include <stdio.h>

#include "conn.h"
#include "handler.h"
#include "log.h"
#include "model.h"
#include "sig.h"
#include "supervise.h"
#include "tls.h"
#include "worker.h"

int model_iterative(int lfd)
{
    worker_begin();
    sig_close_on_stop = lfd; /* a stop closes it: accept() cannot miss the stop */
    while (!sig_stop) {
        if (sig_reopen) {
            sig_reopen = 0;
            access_log_reopen();
        }
        if (sig_reload) { /* SIGHUP: new certificates from the next connection on */
            sig_reload = 0;
            tls_reload();
        }
        union net_addr peer;
        int li; /* which listener (--listen) */
        int fd = net_accept_any(lfd, &peer, &li);
        if (fd < 0) {
            if (sig_stop)
                break;
            accept_error(errno); /* EINTR: a signal arrived; the loop looks at the flags */
            continue;
        }
        if (log_verbose_on) {
            char ip[INET6_ADDRSTRLEN];
            int port;
            net_addr_str(&peer, ip, sizeof ip, &port);
            vlog("accepted connection from %s port %d (fd %d)", ip, port, fd);
        }
        sb_accepted(1);
        sb_set_state(SB_BUSY);
        serve_connection(fd, &peer, li); /* closes fd */
        sb_set_active(0);
        sb_set_state(SB_IDLE);
        vlog("connection closed");
    }
    worker_end(WORKER_FREE);
    return 0;
}
