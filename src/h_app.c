/* h_app.c - C apps loaded as --app [PREFIX=]FILE.so:SYMBOL: the handler.
 *
 * The public side is include/forkhttpd_app.h (read it first); the server's
 * half of it is this file and the units app_int.h names:
 *   request  h_app(): wrap the core's request in an fh_req (app_req_begin),
 *            run the handler (app_call), turn what it set into the core's
 *            struct response (app_req_finish: memory, file or stream body),
 *            or a 500 if it failed or gave something invalid.
 *   api      app_api.c: the calls the handler makes (fh_header, fh_write...).
 *   stream   app_stream.c: an fh_stream body, pulled by the core.
 *   crash    app_crash.c: while app code runs, a fatal signal answers 500 on
 *            the client socket, logs the app and the request line, re-raises.
 *   pool     app_pool.c: with --threads (event model), thread-safe apps run
 *            on a pool thread; the loop keeps the socket.
 *   load     app_load.c: dlopen, the API version check, init/fini. */
#include "app_int.h"
#include "app_pool.h"
#include "log.h"

static void fail_500(struct areq *q, struct response *resp)
{
    const char *rl;
    size_t n = app_request_line(q->rq, &rl);
    warn("app %s: %s; answering 500 to \"%.*s\"", q->app->name, q->why, (int)n, rl);
    if (q->body == B_STREAM && q->sclose) {
        app_crash_enter(q->app, q->rq, q->rq->crash_ok, " in its stream's close");
        q->sclose(q->sctx);
        app_crash_leave();
    }
    resp_error(resp, 500); /* also drops the header lines the app added */
    areq_put(q);           /* frees the write buffer, closes a file */
}

void app_req_fill(struct areq *q, const struct request *req, struct response *resp)
{
    q->rq = req;
    q->resp = resp;
    fh_req *r = &q->pub;
    const struct http_req *h = req->h;
    const struct mount *m = req->mount;
    r->api = &app_api;
    r->state = q->app->state;
    r->method = app_view(h->method);
    r->target = app_view(h->target);
    r->path.ptr = req->path;
    r->path.len = req->path_len;
    size_t pl = m->prefix_len == 1 ? 0 : m->prefix_len; /* mount "/": SCRIPT_NAME "" */
    r->script_name.ptr = m->prefix;
    r->script_name.len = pl;
    r->path_info.ptr = req->path + pl;
    r->path_info.len = req->path_len - pl;
    r->query = app_view(h->query);
    r->protocol.ptr = h->version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    r->protocol.len = 8;
    r->content_length = req->body_fd >= 0 ? req->body_len : 0;
}

/* A request object for req, its fh_req filled in; NULL with resp set to an
 * error (the app failed its init in this process, or no memory). */
static struct areq *app_req_begin(const struct request *req, struct response *resp)
{
    struct app *a = req->mount->app;
    if (!a || !app_ready(a)) {
        resp_error(resp, 500);
        return NULL;
    }
    struct areq *q = areq_get();
    if (!q) {
        log_error("app %s: out of memory", a->name);
        resp_error(resp, 503);
        return NULL;
    }
    q->app = a;
    app_req_fill(q, req, resp);
    return q;
}

/* Call the app: its handler runs under the crash guard (of this thread: a
 * pool thread or the loop's); once it returns the response can no longer
 * change. */
int app_call(struct areq *q)
{
    app_crash_enter(q->app, q->rq, 1, "");
    int rc = q->app->fn(&q->pub);
    app_crash_leave();
    q->open = 0;
    return rc;
}

/* What the app set, checked, into the core's response; or a 500. */
void app_req_finish(struct areq *q, int rc)
{
    struct response *resp = q->resp;
    if (rc != 0)
        app_refuse(q, "the handler returned %d", rc);
    int64_t blen = q->body == B_STATIC ? (int64_t)q->slen
                 : q->body == B_BUF    ? (int64_t)q->len
                 : q->body == B_FILE   ? q->flen
                 : q->body == B_STREAM ? q->stream_len
                                       : 0;
    if (q->body == B_STREAM && blen < 0)
        blen = q->declared; /* the app's Content-Length is the stream's length */
    if (q->declared >= 0 && blen != q->declared)
        app_refuse(q, "Content-Length %lld but a body of %lld bytes", (long long)q->declared,
               (long long)blen);
    if ((q->status == 204 || q->status == 304) && (blen != 0 || q->body == B_STREAM))
        app_refuse(q, "a body with status %d", q->status);
    if (q->failed) {
        fail_500(q, resp);
        return;
    }

    resp->status = q->status;
    resp->length = blen;
    switch (q->body) {
    case B_NONE:
        resp->body = BODY_NONE;
        break;
    case B_STATIC:
        resp->body = BODY_MEM;
        resp->mem = q->smem;
        break;
    case B_BUF:
        if (!q->buf) { /* only empty fh_write calls: no memory to hand over */
            resp->body = BODY_NONE;
            break;
        }
        resp->body = BODY_MEM;
        resp->mem = q->buf;
        resp->mem_free = q->buf; /* the core frees it once sent */
        q->buf = NULL;
        break;
    case B_FILE:
        resp->body = BODY_FILE;
        resp->fd = q->fd;
        resp->off = (off_t)q->foff;
        q->fd = -1;
        break;
    case B_STREAM:
        q->stream_len = blen;
        app_stream_attach(q, resp);
        return; /* q lives until the core closes the stream */
    }
    areq_put(q);
}

void h_app(const struct request *req, struct response *resp)
{
    struct areq *q = app_req_begin(req, resp);
    if (!q)
        return;
    if (app_pool_wants(q)) /* a thread-safe app with --threads: inline while short, else a thread */
        app_pool_call(q, req, resp);
    else
        app_req_finish(q, app_call(q));
}
