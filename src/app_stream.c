/* app_stream.c - an app's fh_stream body, as the core pulls it: the app's
 * read callback runs under the crash guard when the socket can take more;
 * its close callback runs exactly once, also when the client went away. */
#include "app_int.h"
#include "log.h"

static ssize_t stream_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    struct areq *q = ctx;
    if (q->stream_len >= 0) {
        int64_t left = q->stream_len - q->stream_sent;
        if (left == 0)
            return 0; /* the promised length is out: the body is complete */
        if ((int64_t)cap > left)
            cap = (size_t)left;
    }
    *wait_fd = -1;
    /* the head is (being) sent: a crash here cannot answer 500 any more */
    app_crash_enter(q->app, q->rq, 0, " in its stream");
    ssize_t n = q->sread(q->sctx, buf, cap, wait_fd);
    app_crash_leave();
    const char *rl;
    size_t rll;
    if (n == FH_AGAIN) {
        if (*wait_fd >= 0)
            return FH_AGAIN;
        rll = app_request_line(q->rq, &rl);
        warn("app %s: stream returned FH_AGAIN without a wait_fd; aborting \"%.*s\"",
             q->app->name, (int)rll, rl);
        return -1;
    }
    if (n < 0 || (size_t)n > cap) {
        rll = app_request_line(q->rq, &rl);
        warn("app %s: stream %s; aborting \"%.*s\"", q->app->name,
             n < 0 ? "failed" : "returned more than asked for", (int)rll, rl);
        return -1;
    }
    if (n == 0 && q->stream_len >= 0) { /* short of the length in the head */
        rll = app_request_line(q->rq, &rl);
        warn("app %s: stream ended after %lld of %lld bytes; aborting \"%.*s\"",
             q->app->name, (long long)q->stream_sent, (long long)q->stream_len, (int)rll, rl);
        return -1;
    }
    q->stream_sent += n;
    return n;
}

static void stream_close(void *ctx)
{
    struct areq *q = ctx;
    if (q->sclose) {
        app_crash_enter(q->app, q->rq, 0, " in its stream's close");
        q->sclose(q->sctx);
        app_crash_leave();
    }
    areq_put(q);
}

void app_stream_attach(struct areq *q, struct response *resp)
{
    resp->body = BODY_STREAM;
    resp->stream.read = stream_read;
    resp->stream.close = stream_close;
    resp->stream.ctx = q;
}
