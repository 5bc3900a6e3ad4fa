/* crash.c - a misbehaving app for the tests: forkhttpd --app /crash=build/crash.so:app
 *
 *   /crash/segv          writes to an unmapped address (SIGSEGV)
 *   /crash/abort         abort() (SIGABRT)
 *   /crash/fpe           raise(SIGFPE) (a real division by zero would be
 *                        caught first by UBSan in the sanitizer build)
 *   /crash/stream-segv   starts a chunked body, then crashes in the pull callback
 *   /crash/error         the handler returns an error
 *   /crash/badheader     a header value with CR LF (response splitting)
 *   /crash/badname       a header name with a space
 *   /crash/badstatus     status 99
 *   /crash/connection    sets Connection (the server's to set)
 *   /crash/cl-bad        Content-Length 5 with a 3-byte body
 *   /crash/cl-ok         Content-Length 3 with a 3-byte body (honoured)
 *   /crash/two-bodies    fh_write, then fh_body_static (one body source only)
 * and a few paths the examples do not cover:
 *   /crash/file          ./app-file.bin (in the server's cwd) with fh_sendfile
 *   /crash/file-range    bytes 10..109 of it
 *   anything else        200 "ok"
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <forkhttpd_app.h>

fh_handler app;
/* No app_flags: NOT thread-safe (the stream's counter is static), so it runs
 * inside the event loop even with --threads (apps/sleep.c crashes on a pool
 * thread). */

static int is(fh_req *r, const char *p)
{
    return r->path_info.len == strlen(p) && memcmp(r->path_info.ptr, p, r->path_info.len) == 0;
}

static void segv(void)
{
    /* not NULL (UBSan would report that first): a low, never-mapped page,
     * read from a volatile so the compiler cannot see the address */
    static volatile uintptr_t bad = 16;
    *(volatile char *)bad = 1;
}

static ssize_t crash_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    int *calls = ctx;
    (void)cap; /* >= 8: the server pulls in pieces of many KiB */
    (void)wait_fd;
    if ((*calls)++ == 0) {
        memcpy(buf, "partial\n", 8);
        return 8;
    }
    segv();
    return 0;
}

int app(fh_req *r)
{
    static int calls;
    if (is(r, "/segv"))
        segv();
    if (is(r, "/abort"))
        abort();
    if (is(r, "/fpe"))
        raise(SIGFPE);
    if (is(r, "/stream-segv")) {
        calls = 0;
        return fh_stream(r, crash_read, NULL, &calls, -1);
    }
    if (is(r, "/error"))
        return -1;
    if (is(r, "/file") || is(r, "/file-range")) {
        int fd = open("app-file.bin", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fh_status(r, 404);
            return 0;
        }
        fh_header(r, "Content-Type", "application/octet-stream");
        return is(r, "/file") ? fh_sendfile(r, fd, 0, -1) : fh_sendfile(r, fd, 10, 100);
    }
    if (is(r, "/two-bodies")) {
        fh_write(r, "a", 1);
        return fh_body_static(r, "b", 1);
    }
    if (is(r, "/badheader"))
        fh_header(r, "X-Bad", "a\r\nInjected: 1");
    if (is(r, "/badname"))
        fh_header(r, "Bad Name", "x");
    if (is(r, "/badstatus"))
        fh_status(r, 99);
    if (is(r, "/connection"))
        fh_header(r, "Connection", "close");
    if (is(r, "/cl-bad"))
        fh_header(r, "Content-Length", "5");
    if (is(r, "/cl-ok"))
        fh_header(r, "Content-Length", "3");
    if (is(r, "/cl-bad") || is(r, "/cl-ok"))
        return fh_write(r, "abc", 3);
    fh_header(r, "Content-Type", "text/plain");
    return fh_write(r, "ok\n", 3);
}
