/* app_pool.h - the app thread pool of an event worker (--threads N).
 *
 * The event loop keeps the socket; a pool thread runs a thread-safe app's
 * handler (C apps with FH_APP_THREAD_SAFE, --wsgi) on a copy of the request,
 * and hands the result back through an eventfd the loop waits on (the core's
 * deferred response: struct deferred in resp.h). Static files, CGI and apps
 * that are not thread-safe stay on the loop. */
#ifndef FH_APP_POOL_H
#define FH_APP_POOL_H

#include "app_int.h"

/* Per process (worker.c's "apps" hooks): decide whether this process has a
 * pool (event model, --threads > 0, an app mounted); threads start lazily,
 * as calls come. Stop waits for the calls in flight, then joins them. */
void app_pool_start(void);
void app_pool_stop(void);
/* Should q run on the pool? */
int app_pool_wants(const struct areq *q);
/* Run q (from app_req_begin) on the pool for req: resp becomes a deferred
 * response (or a 503 when the queue is full). */
void app_pool_submit(struct areq *q, const struct request *req, struct response *resp);
/* Run q (app_pool_wants) inline in the loop while its app's calls are seen
 * to be short (--app-inline-us), else on the pool (app_pool_submit). */
void app_pool_call(struct areq *q, const struct request *req, struct response *resp);
/* areq_put/free: what a pooled request holds (its dup of the body fd);
 * free: its copy buffers and eventfd too. */
void app_pool_put(struct areq *q);
void app_pool_free(struct areq *q);

#endif
