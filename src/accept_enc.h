/* accept_enc.h - which content coding to send, from a request's
 * Accept-Encoding (RFC 9110 12.5.3) and the codings we have. Pure: no I/O,
 * no allocation (like cgi_head.c); unit-tested in tests/unit/test_accept_enc.c.
 *
 * The rules:
 *  - no Accept-Encoding field: identity (RFC 9110 allows any coding, but
 *    clients that do not send the field rarely decode one: curl, wget);
 *  - each coding's weight is its q (default 1; "x-gzip" is gzip); "*" gives
 *    its q to every coding not named; q=0 means "not acceptable";
 *  - identity is acceptable unless named with q=0 (or "*;q=0" without it);
 *  - the coding with the highest q among those we have wins; ties go to br,
 *    then gzip, then identity (the smallest body);
 *  - when nothing is acceptable, identity is sent anyway (RFC 9110 12.5.3
 *    allows it, rather than a 406 for a file anyone can read);
 *  - a malformed element (a bad q) is skipped, not the whole field. */
#ifndef FH_ACCEPT_ENC_H
#define FH_ACCEPT_ENC_H

#include <stddef.h>

enum content_coding { ENC_IDENTITY = 0, ENC_GZIP = 1, ENC_BR = 2, ENC_COUNT = 3 };
#define ENC_BIT(e) (1u << (e))

/* The coding to send, among those in the bit mask `have` (ENC_BIT(...);
 * identity is always had). field is the Accept-Encoding value, or NULL when
 * the request has none. */
enum content_coding accept_enc_choose(const char *field, size_t len, unsigned have);

/* "gzip", "br" (for Content-Encoding), "" for identity. */
const char *accept_enc_name(enum content_coding e);

#endif
