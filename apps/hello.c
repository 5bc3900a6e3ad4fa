/* hello.c - the tutorial's app: forkhttpd --app build/hello.so:app */
#include <forkhttpd_app.h>

fh_handler app;

int app(fh_req *r)
{
    static const char body[] = "Hello, World!\n"; /* static: sent without a copy */
    fh_status(r, 200);
    fh_header(r, "Content-Type", "text/plain");
    return fh_body_static(r, body, sizeof body - 1);
}
