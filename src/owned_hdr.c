/* owned_hdr.c - the response fields the server owns (see owned_hdr.h). */
#include <string.h>
#include <strings.h>

#include "owned_hdr.h"

static const char *const owned[OWNED_HDR_COUNT] = {
    /* framing and the connection: the core's alone (RFC 9112 6, 9; the
     * hop-by-hop fields of RFC 9110 7.6.1 and PEP 3333) */
    "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer",
    "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
    /* written by the core on every response */
    "Date", "Server",
};

int owned_hdr_find(const char *name, size_t len)
{
    for (int i = 0; i < OWNED_HDR_COUNT; i++)
        if (strlen(owned[i]) == len && strncasecmp(name, owned[i], len) == 0)
            return i;
    return -1;
}

const char *owned_hdr_name(int i)
{
    return i >= 0 && i < OWNED_HDR_COUNT ? owned[i] : "";
}
