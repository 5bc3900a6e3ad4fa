/* router.h - the mount table: longest prefix -> handler. */
#ifndef FH_ROUTER_H
#define FH_ROUTER_H

#include "handler.h"

/* The mount whose prefix is the longest match of path on a segment boundary
 * ("/app" matches "/app" and "/app/x", not "/apple"). The static root "/"
 * always matches. */
const struct mount *router_match(const char *path, size_t len);

/* Route a parsed, well-formed request: normalise the path into pathbuf and
 * pick the mount (req->path, req->mount). Returns 1 when a handler is to run
 * (router_call), 0 when the request was answered here into resp (OPTIONS *,
 * CONNECT, a malformed path). */
int router_route(struct request *req, char *pathbuf, size_t cap, struct response *resp);
/* Does this mount's handler take the request body (spooled before it runs)? */
int router_wants_body(const struct mount *m);
/* Run the mount's handler. */
void router_call(const struct request *req, struct response *resp);

#endif
