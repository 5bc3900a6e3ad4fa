/* router.h - the mount table: longest prefix -> handler. */
#ifndef FH_ROUTER_H
#define FH_ROUTER_H

#include "handler.h"

/* The mount whose prefix is the longest match of path on a segment boundary
 * ("/app" matches "/app" and "/app/x", not "/apple"). The static root "/"
 * always matches. */
const struct mount *router_match(const char *path, size_t len);

/* Route a parsed, well-formed request: fill req->path/mount (path normalised
 * into pathbuf) and let the matching handler fill resp. Requests that no
 * handler should see (OPTIONS *, CONNECT, a bad path) are answered here. */
void router_handle(struct request *req, char *pathbuf, size_t cap, struct response *resp);

#endif
