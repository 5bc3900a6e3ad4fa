/* router.c - pick the handler for a request. Order: longest prefix wins
 * among --app, --cgi and the static root ("/"); on equal prefixes the mount
 * given first on the command line wins. */
#include "router.h"

#include <stdio.h>
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
        resp->status = 204; /* as OPTIONS on a static path: no content, just Allow */
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
    return m && m->ops->wants_body;
}

void router_call(const struct request *req, struct response *resp)
{
    req->mount->ops->call(req, resp);
}

/* ---- the kinds of mount ---- */

static void describe_dir(const struct mount *m, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", m->dir ? m->dir : "");
}

static void describe_app(const struct mount *m, char *buf, size_t cap)
{
    if (m->label)
        snprintf(buf, cap, "%s", m->label);
    else
        snprintf(buf, cap, "%s:%s", m->file ? m->file : "", m->symbol ? m->symbol : "");
}

static void describe_status(const struct mount *m, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", cfg.status_public ? "any client" : "loopback clients");
}

const struct mount_ops mount_ops_static = {"static", 0, h_static, describe_dir};
const struct mount_ops mount_ops_cgi = {"cgi", 1, h_cgi, describe_dir};
const struct mount_ops mount_ops_app = {"app", 1, h_app, describe_app};
/* the status page reads no body: a POST is 405, its body dropped */
const struct mount_ops mount_ops_status = {"status", 0, h_status, describe_status};
