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

int model_iterative(int lfd)
{
    h_worker_start();
    sig_close_on_stop = lfd; /* a stop closes it: accept() cannot miss the stop */
    while (!sig_stop) {
        if (sig_reopen) {
            sig_reopen = 0;
            access_log_reopen();
        }
        union net_addr peer;
        int fd = net_accept(lfd, &peer);
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
        if (sb_self) {
            sb_self->accepted++;
            sb_self->active = 1;
            sb_self->state = SB_BUSY;
        }
        serve_connection(fd, &peer); /* closes fd */
        if (sb_self) {
            sb_self->active = 0;
            sb_self->state = SB_IDLE;
        }
        vlog("connection closed");
    }
    h_worker_stop();
    return 0;
}
