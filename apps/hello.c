/* hello.c - the tutorial's app: forkhttpd --app build/hello.so:app */
#include <forkhttpd_app.h>

fh_handler app;

/* Thread-safe (no state), and it never waits: with --threads it still runs
 * inside the event loop, which saves the hand-off to a thread. */
const unsigned app_flags = FH_APP_THREAD_SAFE | FH_APP_INLINE;

int app(fh_req *r)
{
    static const char body[] = "Hello, World!\n"; /* static: sent without a copy */
    fh_status(r, 200);
    fh_header(r, "Content-Type", "text/plain");
    return fh_body_static(r, body, sizeof body - 1);
}
