/* h_app.c - C apps loaded as FILE.so:SYMBOL. Placeholder until the gateway lands. */
#include "handler.h"

void h_app(const struct request *req, struct response *resp)
{
    (void)req;
    resp_error(resp, 501);
}

int h_app_load(void)
{
    return 0;
}

void h_app_unload(void)
{
}

void h_worker_start(void)
{
}

void h_worker_stop(void)
{
}
