/* router.c - pick the handler for a request. Order: longest prefix wins
 * among --app, --cgi and the static root ("/"); on equal prefixes the mount
 * given first on the command line wins. */
#include "router.h"

#include <string.h>

const struct mount *router_match(const char *path, size_t len)
{
    const struct mount *best = NULL;
    for (int i = 0; i < cfg.nmounts; i++) {
        const struct mount *m = &cfg.mounts[i];
        size_t pl = m->prefix_len;
        if (pl == 1) { /* "/" matches everything */
            if (!best)
                best = m;
            continue;
        }
        if (len < pl || memcmp(path, m->prefix, pl) != 0 || (len > pl && path[pl] != '/'))
            continue;
        if (!best || pl > best->prefix_len)
            best = m;
    }
    return best;
}

int router_route(struct request *req, char *pathbuf, size_t cap, struct response *resp)
{
    const struct http_req *h = req->h;
    if (h->target_form == HTTP_TF_ASTERISK) { /* OPTIONS * : the server as a whole */
        resp->status = 200;
        resp->length = 0;
        resp_header(resp, "Allow", "GET, HEAD, POST, OPTIONS");
        return 0;
    }
    if (h->target_form == HTTP_TF_AUTHORITY) { /* CONNECT: we are not a proxy */
        resp_error(resp, 405);
        resp_header(resp, "Allow", "GET, HEAD, POST, OPTIONS");
        return 0;
    }
    int n = http_normalize_path(h->path.p, h->path.len, pathbuf, cap);
    if (n < 0) {
        resp_error(resp, 400);
        return 0;
    }
    req->path = pathbuf;
    req->path_len = (size_t)n;
    req->mount = router_match(pathbuf, (size_t)n);
    return 1;
}

int router_wants_body(const struct mount *m)
{
    return m && m->kind != MOUNT_STATIC;
}

void router_call(const struct request *req, struct response *resp)
{
    switch (req->mount->kind) {
    case MOUNT_STATIC: h_static(req, resp); break;
    case MOUNT_CGI: h_cgi(req, resp); break;
    case MOUNT_APP: h_app(req, resp); break;
    case MOUNT_STATUS: h_status(req, resp); break;
    }
}
