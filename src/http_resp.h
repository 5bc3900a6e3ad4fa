/* http_resp.h - status lines, response heads, dates. */
#ifndef FH_HTTP_RESP_H
#define FH_HTTP_RESP_H

#include <stddef.h>
#include <time.h>

#include "clock.h"
#include "resp.h"

const char *http_reason(int status);

/* Parse an HTTP-date (IMF-fixdate, RFC 850, asctime). 0 ok, -1 malformed. */
int http_date_parse(const char *s, size_t len, time_t *out);

/* Does the response to this request/status carry a body at all? */
int http_status_has_body(int status);

/* Write the response head into out; returns its length or 0 if it does not
 * fit. `keep_alive` decides "Connection: close"; `http10` the keep-alive echo;
 * `chunked` frames an unknown-length body for HTTP/1.1. */
size_t http_build_head(const struct response *r, int keep_alive, int http10, int chunked,
                       char *out, size_t cap);

#endif
