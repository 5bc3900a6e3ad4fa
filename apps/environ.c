/* environ.c - the request as a WSGI/CGI environ, query parsing, per-process
 * state and a streamed (chunked) response:
 *     forkhttpd --app /env=build/environ.so:app
 *
 *   /env/...           text/plain: "NAME=value" for every environ variable,
 *                      then "query: name=value" for each decoded query pair,
 *                      then "requests: N" served by this process
 *   /env/stream?n=N    N lines "line I" produced one per pull (chunked:
 *                      the length is not given), N <= 1000000
 *   /env/owned         "owned\n", after trying to set the fields the server
 *                      writes itself (Date, Server, framing): they are dropped
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <forkhttpd_app.h>

fh_handler app;
fh_init app_init;
fh_fini app_fini;
/* No app_flags: NOT thread-safe (state->requests is a plain counter), so it
 * runs inside the event loop, one call at a time, even with --threads. */

struct state {
    unsigned long requests; /* served by this process */
};

/* Once per serving process, after fork: the per-process state. */
int app_init(const struct fh_api *api, void **state)
{
    struct state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    *state = s;
    (void)api;
    return 0;
}

void app_fini(const struct fh_api *api, void *state)
{
    (void)api;
    free(state);
}

struct counter {
    long next, end;
};

static ssize_t lines_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    struct counter *c = ctx;
    (void)wait_fd;
    if (c->next >= c->end)
        return 0;
    int n = snprintf(buf, cap, "line %ld\n", c->next);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    c->next++;
    return n;
}

static void lines_close(void *ctx)
{
    free(ctx);
}

static int stream(fh_req *r)
{
    long n = 10;
    struct fh_str q = r->query, name, value;
    while (fh_form_next(&q, &name, &value)) {
        char buf[32];
        fh_unescape(name, buf, sizeof buf);
        if (strcmp(buf, "n") == 0) {
            fh_unescape(value, buf, sizeof buf);
            n = strtol(buf, NULL, 10);
        }
    }
    if (n < 0 || n > 1000000) {
        fh_status(r, 400);
        return fh_write(r, "n: 0..1000000\n", 14);
    }
    struct counter *c = malloc(sizeof *c);
    if (!c)
        return -1;
    c->next = 0;
    c->end = n;
    fh_header(r, "Content-Type", "text/plain");
    return fh_stream(r, lines_read, lines_close, c, -1); /* -1: unknown length: chunked */
}

int app(fh_req *r)
{
    struct state *s = r->state;
    s->requests++;
    if (r->path_info.len == 7 && memcmp(r->path_info.ptr, "/stream", 7) == 0)
        return stream(r);
    if (r->path_info.len == 6 && memcmp(r->path_info.ptr, "/owned", 6) == 0) {
        static const char *const owned[] = {"Date", "Server", "Connection", "Keep-Alive",
                                            "Transfer-Encoding", "TE", "Trailer", "Upgrade"};
        for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
            if (fh_header(r, owned[i], "app") < 0) /* dropped, not refused */
                return -1;
        fh_header(r, "X-Kept", "yes");
        return fh_body_static(r, "owned\n", 6);
    }

    fh_header(r, "Content-Type", "text/plain; charset=utf-8");
    const char *name, *value;
    for (size_t i = 0; fh_env_at(r, i, &name, &value) == 0; i++)
        fh_printf(r, "%s=%s\n", name, value);

    struct fh_str q = r->query, n, v;
    while (fh_form_next(&q, &n, &v)) {
        char nb[256], vb[1024];
        fh_unescape(n, nb, sizeof nb);
        fh_unescape(v, vb, sizeof vb);
        fh_printf(r, "query: %s=%s\n", nb, vb);
    }
    return fh_printf(r, "requests: %lu\n", s->requests);
}
