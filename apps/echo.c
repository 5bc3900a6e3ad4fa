/* echo.c - echoes the request back: forkhttpd --app /echo=build/echo.so:app
 *
 *   GET, HEAD   200 text/plain: the request's header fields as received,
 *               one "Name: value" per line
 *   POST, PUT   200: the request body, streamed back in constant memory
 *               (the server already de-chunked it; any size up to --max-body)
 *   other       405
 */
#include <string.h>

#include <forkhttpd_app.h>

fh_handler app;

/* Thread-safe: no state besides the request. With --threads it runs on a
 * pool thread (reading a large body may wait on the disk). */
const unsigned app_flags = FH_APP_THREAD_SAFE;

static int is(struct fh_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* The pull callback: the server asks for the next piece when it can send it. */
static ssize_t body_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    (void)wait_fd; /* the body is a spooled file: it never has to wait */
    return fh_read(ctx, buf, cap);
}

int app(fh_req *r)
{
    if (is(r->method, "GET") || is(r->method, "HEAD")) {
        struct fh_str name, value;
        fh_header(r, "Content-Type", "text/plain");
        for (size_t i = 0; fh_req_header_at(r, i, &name, &value) == 0; i++)
            fh_printf(r, "%.*s: %.*s\n", (int)name.len, name.ptr, (int)value.len, value.ptr);
        return 0;
    }
    if (is(r->method, "POST") || is(r->method, "PUT")) {
        const char *type = fh_env(r, "CONTENT_TYPE");
        fh_header(r, "Content-Type", type ? type : "application/octet-stream");
        /* the length is known (the body is complete), so no chunking is needed;
         * the request r stays valid until the stream is closed */
        return fh_stream(r, body_read, NULL, r, r->content_length);
    }
    fh_status(r, 405);
    fh_header(r, "Allow", "GET, HEAD, POST, PUT");
    return fh_write(r, "method not allowed\n", 19);
}
