/* proxy.c - the PROXY protocol header, v1 and v2 (see proxy.h). Pure.
 *
 * The rules (HAProxy's doc/proxy-protocol.txt) and our reading of them:
 *  - v1 is one line, "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with single
 *    spaces, at most 107 bytes, or "PROXY UNKNOWN ...\r\n" (the rest of the
 *    line ignored: the connection's own addresses stay). Addresses must be of
 *    the family named, in the canonical textual form inet_pton takes; ports
 *    are decimal 0..65535 without leading zeros.
 *  - v2 is the 12-byte signature, version 2 with command LOCAL (a health
 *    check of the balancer's own: the connection's addresses stay) or PROXY,
 *    a family and protocol, a length, the addresses, then TLVs. TLVs are
 *    walked (each must fit the length exactly) and skipped: we need none.
 *    AF_UNSPEC and AF_UNIX addresses mean "keep the connection's own", as
 *    the spec says a receiver should; a datagram protocol is refused.
 *  - A header is recognised or refused as early as its bytes allow: a first
 *    byte that starts neither signature is "no PROXY header" at once (a
 *    /proxy listener closes), a wrong byte inside one is "malformed". */
#include "proxy.h"

#include <arpa/inet.h>
#include <string.h>

static const char v1_sig[] = "PROXY ";
static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static int bad(struct proxy_hdr *h, const char *why)
{
    h->error = why;
    return PROXY_BAD;
}

/* A decimal port, 0..65535, no sign, no leading zero. */
static int parse_port(const char *p, size_t n, unsigned short *out)
{
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (unsigned short)v;
    return 0;
}

/* An address of family af (AF_INET/AF_INET6) with a port into *a. */
static int parse_addr(int af, const char *p, size_t n, union net_addr *a)
{
    char s[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof s)
        return -1;
    memcpy(s, p, n);
    s[n] = 0;
    memset(a, 0, sizeof *a);
    if (af == AF_INET) {
        a->in4.sin_family = AF_INET;
        return inet_pton(AF_INET, s, &a->in4.sin_addr) == 1 ? 0 : -1;
    }
    a->in6.sin6_family = AF_INET6;
    return inet_pton(AF_INET6, s, &a->in6.sin6_addr) == 1 ? 0 : -1;
}

static void set_port(union net_addr *a, unsigned short port)
{
    if (a->sa.sa_family == AF_INET)
        a->in4.sin_port = htons(port);
    else
        a->in6.sin6_port = htons(port);
}

static int parse_v1(const unsigned char *b, size_t len, struct proxy_hdr *h)
{
    h->version = 1;
    size_t lim = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    const unsigned char *nl = memchr(b, '\n', lim);
    if (!nl) {
        for (size_t i = sizeof v1_sig - 1; i < lim; i++)
            if ((b[i] < 0x20 || b[i] > 0x7e) && !(b[i] == '\r' && i == len - 1))
                return bad(h, "v1: a control byte in the line");
        if (len >= PROXY_V1_MAX)
            return bad(h, "v1: no CRLF within 107 bytes");
        return PROXY_AGAIN;
    }
    size_t end = (size_t)(nl - b); /* at the LF */
    if (end < sizeof v1_sig || b[end - 1] != '\r')
        return bad(h, "v1: the line does not end with CRLF");
    const char *p = (const char *)b + sizeof v1_sig - 1;
    const char *e = (const char *)b + end - 1; /* at the CR */
    for (const char *q = p; q < e; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
            return bad(h, "v1: a control byte in the line");
    /* the protocol */
    if ((size_t)(e - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (e - p == 7 || p[7] == ' ')) {
        h->local = 1; /* the rest of the line is ignored (spec 2.1) */
        return (int)end + 1;
    }
    int af;
    if ((size_t)(e - p) > 5 && memcmp(p, "TCP4 ", 5) == 0)
        af = AF_INET;
    else if ((size_t)(e - p) > 5 && memcmp(p, "TCP6 ", 5) == 0)
        af = AF_INET6;
    else
        return bad(h, "v1: the protocol is not TCP4, TCP6 or UNKNOWN");
    p += 5;
    /* four fields, one space between each */
    const char *f[4];
    size_t fl[4];
    for (int i = 0; i < 4; i++) {
        const char *sp = i < 3 ? memchr(p, ' ', (size_t)(e - p)) : e;
        if (!sp)
            return bad(h, "v1: fewer than four fields");
        f[i] = p;
        fl[i] = (size_t)(sp - p);
        if (fl[i] == 0)
            return bad(h, "v1: an empty field (two spaces)");
        p = sp + 1;
    }
    if (memchr(f[3], ' ', fl[3]))
        return bad(h, "v1: more than four fields");
    unsigned short sport, dport;
    if (parse_addr(af, f[0], fl[0], &h->src) < 0 || parse_addr(af, f[1], fl[1], &h->dst) < 0)
        return bad(h, af == AF_INET ? "v1: not an IPv4 address" : "v1: not an IPv6 address");
    if (parse_port(f[2], fl[2], &sport) < 0 || parse_port(f[3], fl[3], &dport) < 0)
        return bad(h, "v1: not a port (0..65535)");
    set_port(&h->src, sport);
    set_port(&h->dst, dport);
    return (int)end + 1;
}

static int parse_v2(const unsigned char *b, size_t len, struct proxy_hdr *h)
{
    h->version = 2;
    if (len > 12 && (b[12] >> 4) != 2)
        return bad(h, "v2: version is not 2");
    if (len > 12 && (b[12] & 0x0F) > 1)
        return bad(h, "v2: command is neither LOCAL nor PROXY");
    if (len > 13 && (b[13] >> 4) > 3)
        return bad(h, "v2: unknown address family");
    if (len > 13 && (b[13] & 0x0F) > 2)
        return bad(h, "v2: unknown transport protocol");
    if (len < PROXY_V2_HEAD)
        return PROXY_AGAIN;
    size_t body = (size_t)b[14] << 8 | b[15];
    size_t total = PROXY_V2_HEAD + body;
    int fam = b[13] >> 4, proto = b[13] & 0x0F;
    size_t alen = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
    if (body < alen) /* known before the bytes come: refuse at once */
        return bad(h, "v2: the length is too short for the addresses");
    if (len < total)
        return PROXY_AGAIN;
    const unsigned char *a = b + PROXY_V2_HEAD;
    if ((b[12] & 0x0F) == 0) { /* LOCAL: the addresses (if any) are not the client's */
        h->local = 1;
    } else if (fam == 0 || fam == 3 || proto == 0) {
        h->local = 1; /* UNSPEC or UNIX: the connection's own addresses */
    } else if (proto != 1) {
        return bad(h, "v2: a datagram protocol on a stream connection");
    } else if (fam == 1) {
        memset(&h->src, 0, sizeof h->src);
        memset(&h->dst, 0, sizeof h->dst);
        h->src.in4.sin_family = h->dst.in4.sin_family = AF_INET;
        memcpy(&h->src.in4.sin_addr, a, 4);
        memcpy(&h->dst.in4.sin_addr, a + 4, 4);
        memcpy(&h->src.in4.sin_port, a + 8, 2); /* both in network order */
        memcpy(&h->dst.in4.sin_port, a + 10, 2);
    } else {
        memset(&h->src, 0, sizeof h->src);
        memset(&h->dst, 0, sizeof h->dst);
        h->src.in6.sin6_family = h->dst.in6.sin6_family = AF_INET6;
        memcpy(&h->src.in6.sin6_addr, a, 16);
        memcpy(&h->dst.in6.sin6_addr, a + 16, 16);
        memcpy(&h->src.in6.sin6_port, a + 32, 2);
        memcpy(&h->dst.in6.sin6_port, a + 34, 2);
    }
    /* TLVs: type, 16-bit length, value; each must fit what is left */
    if ((b[12] & 0x0F) == 1 && fam != 0) {
        size_t off = PROXY_V2_HEAD + alen;
        while (off < total) {
            if (total - off < 3)
                return bad(h, "v2: a truncated TLV");
            size_t vl = (size_t)b[off + 1] << 8 | b[off + 2];
            if (vl > total - off - 3)
                return bad(h, "v2: a TLV longer than the header");
            off += 3 + vl;
            h->ntlv++;
        }
    }
    return (int)total;
}

int proxy_parse(const void *buf, size_t len, struct proxy_hdr *h)
{
    const unsigned char *b = buf;
    memset(h, 0, sizeof *h);
    if (len == 0)
        return PROXY_AGAIN;
    if (b[0] == 'P') {
        size_t n = len < sizeof v1_sig - 1 ? len : sizeof v1_sig - 1;
        for (size_t i = 0; i < n; i++)
            if (b[i] != (unsigned char)v1_sig[i]) {
                h->none = i < 5; /* "POST ..." is no PROXY header; "PROXYx" a bad one */
                return bad(h, h->none ? "no PROXY header" : "v1: no space after PROXY");
            }
        if (len < sizeof v1_sig - 1)
            return PROXY_AGAIN;
        return parse_v1(b, len, h);
    }
    if (b[0] == v2_sig[0]) {
        size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
        if (memcmp(b, v2_sig, n) != 0) {
            h->none = 1;
            return bad(h, "no PROXY header");
        }
        if (len < sizeof v2_sig)
            return PROXY_AGAIN;
        return parse_v2(b, len, h);
    }
    h->none = 1;
    return bad(h, "no PROXY header");
}
