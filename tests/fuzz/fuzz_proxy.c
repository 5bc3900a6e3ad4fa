/* fuzz_proxy.c - libFuzzer driver for the PROXY protocol header parser
 * (src/proxy.c) and the forwarding-chain walk behind trusted proxies
 * (src/realip.c). data[0] picks: even, the rest is what a balancer sent
 * first on a /proxy listener; odd, the rest is an X-Forwarded-For (bit 1
 * clear) or Forwarded (bit 1 set) value from a trusted peer.
 * Invariants (PROXY): a header's length is at most the input (and 107 for
 * v1, which ends with CRLF); every shorter prefix of a header is "more
 * bytes" (AGAIN), the header alone parses the same, and bytes after it do
 * not change it; a refusal says why and stays a refusal when more bytes
 * come; addresses are IPv4 or IPv6. (Chains): the client is one of the
 * chain's addresses or the peer, never the peer's family mangled. */
#include "proxy.h"
#include "realip.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_proxy(const uint8_t *b, size_t len)
{
    struct proxy_hdr h, h2;
    int r = proxy_parse(b, len, &h);
    if (r == PROXY_BAD) {
        if (!h.error)
            abort();
        return;
    }
    if (r == PROXY_AGAIN) {
        if (len >= PROXY_V2_MAX)
            abort();
        if (len && b[0] == 'P' && len >= PROXY_V1_MAX)
            abort();
        return;
    }
    if (r <= 0 || (size_t)r > len)
        abort();
    if (h.version == 1 && (r > PROXY_V1_MAX || b[r - 2] != '\r' || b[r - 1] != '\n'))
        abort();
    if (h.version != 1 && h.version != 2)
        abort();
    if (!h.local && ((h.src.sa.sa_family != AF_INET && h.src.sa.sa_family != AF_INET6) ||
                     h.src.sa.sa_family != h.dst.sa.sa_family))
        abort();
    /* the header alone: the same verdict */
    if (proxy_parse(b, (size_t)r, &h2) != r || h2.local != h.local ||
        (!h.local && memcmp(&h.src, &h2.src, sizeof h.src) != 0))
        abort();
    /* every shorter prefix: more bytes needed (checked at a few points) */
    size_t pts[] = {0, 1, (size_t)r / 2, (size_t)r - 1};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++)
        if (pts[i] < (size_t)r && proxy_parse(b, pts[i], &h2) != PROXY_AGAIN)
            abort();
    /* what follows the header does not change it */
    if (proxy_parse(b, (size_t)r + (len - (size_t)r) / 2, &h2) != r)
        abort();
}

static void check_chain(const uint8_t *b, size_t len, int kind)
{
    struct realip_cidr trusted[2];
    if (realip_parse_cidr("127.0.0.0/8", &trusted[0]) < 0 ||
        realip_parse_cidr("2001:db8::/32", &trusted[1]) < 0)
        abort();
    union net_addr peer, client;
    memset(&peer, 0, sizeof peer);
    peer.in4.sin_family = AF_INET;
    peer.in4.sin_addr.s_addr = htonl(0x7f000001);
    /* two fields: split the value where data says */
    size_t cut = len ? b[0] % (len + 1) : 0;
    struct http_str vals[2] = {{(const char *)b, cut}, {(const char *)b + cut, len - cut}};
    int named = realip_resolve(vals, 2, kind, trusted, 2, &peer, &client);
    if (!named && memcmp(&client, &peer, sizeof peer) != 0)
        abort();
    if (client.sa.sa_family != AF_INET && client.sa.sa_family != AF_INET6)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1); /* exact size: over-reads are caught */
    if (!buf)
        abort();
    memcpy(buf, data + 1, len);
    if (data[0] & 1)
        check_chain(buf, len, data[0] & 2 ? REALIP_FORWARDED : REALIP_XFF);
    else
        check_proxy(buf, len);
    free(buf);
    return 0;
}
