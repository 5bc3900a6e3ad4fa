/* h_cgi.c - CGI/1.1 (RFC 3875). Placeholder until the gateway lands. */
#include "handler.h"

void h_cgi(const struct request *req, struct response *resp)
{
    (void)req;
    resp_error(resp, 501);
}
