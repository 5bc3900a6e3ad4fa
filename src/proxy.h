/* proxy.h - the PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text
 * and v2 binary) that a balancer sends before the first byte of a connection
 * it passes on: who the client really is. Pure: bytes in, a verdict out; no
 * I/O, no malloc, no globals (conn.c does the reading, on a /proxy
 * listener; tests/fuzz/fuzz_proxy.c feeds it anything).
 *
 * Return convention (http_parse.h's): > 0 the header's length (the bytes to
 * consume), PROXY_AGAIN a valid prefix (more bytes needed), PROXY_BAD not a
 * PROXY header (h->none) or a malformed one (h->error says why). */
#ifndef FH_PROXY_H
#define FH_PROXY_H

#include <stddef.h>

#include "net.h" /* union net_addr */

#define PROXY_AGAIN (-2)
#define PROXY_BAD (-1)

#define PROXY_V1_MAX 107     /* "PROXY TCP6 <39> <39> <5> <5>\r\n", the spec's bound */
#define PROXY_V2_HEAD 16     /* signature, version/command, family, length */
#define PROXY_V2_MAX (PROXY_V2_HEAD + 65535)

struct proxy_hdr {
    int version;         /* 1 or 2 */
    /* v1 UNKNOWN, v2 LOCAL (a balancer's own health check), or a v2 family
     * we do not take (UNSPEC, UNIX): keep the connection's own addresses */
    int local;
    union net_addr src;  /* the client (unless local) */
    union net_addr dst;  /* the address the client connected to (unless local) */
    unsigned ntlv;       /* v2: type-length-value fields seen (and skipped) */
    int none;            /* PROXY_BAD because the bytes are no PROXY header at all */
    const char *error;   /* PROXY_BAD: why, for the log line */
};

/* Parse the header at the start of buf[0..len). */
int proxy_parse(const void *buf, size_t len, struct proxy_hdr *h);

#endif
