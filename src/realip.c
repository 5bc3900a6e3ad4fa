/* realip.c - trusted proxies and forwarding chains (see realip.h). Pure. */
#include "realip.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* a as 16 bytes (IPv4 as ::ffff:a.b.c.d); -1 for other families */
static int as16(const union net_addr *a, unsigned char out[16])
{
    if (a->sa.sa_family == AF_INET6) {
        memcpy(out, &a->in6.sin6_addr, 16);
        return 0;
    }
    if (a->sa.sa_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a->in4.sin_addr, 4);
        return 0;
    }
    return -1;
}

static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int realip_parse_cidr(const char *s, struct realip_cidr *out)
{
    char ip[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof ip)
        return -1;
    memcpy(ip, s, n);
    ip[n] = 0;
    union net_addr a;
    memset(&a, 0, sizeof a);
    unsigned max;
    if (inet_pton(AF_INET, ip, &a.in4.sin_addr) == 1) {
        a.sa.sa_family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1) {
        a.sa.sa_family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    unsigned bits = max;
    if (slash) {
        const char *d = slash + 1;
        if (!*d || strlen(d) > 3 || (d[0] == '0' && d[1]))
            return -1;
        bits = 0;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                return -1;
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > max)
            return -1;
    }
    as16(&a, out->addr);
    out->bits = (unsigned char)(bits + (max == 32 ? 96 : 0));
    /* no host bits beyond the prefix: "10.1.2.3/8" is a typo */
    for (unsigned i = out->bits; i < 128; i++)
        if (out->addr[i / 8] & (0x80 >> (i % 8)))
            return -1;
    return 0;
}

int realip_trusted(const struct realip_cidr *list, int n, const union net_addr *a)
{
    unsigned char x[16];
    if (as16(a, x) < 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (prefix_eq(x, list[i].addr, list[i].bits))
            return 1;
    return 0;
}

int realip_parse_addr(const char *p, size_t len, union net_addr *a)
{
    char s[INET6_ADDRSTRLEN];
    if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
        p++;
        len -= 2;
    }
    const char *port = NULL;
    size_t plen = 0;
    if (len && p[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(p, ']', len);
        if (!close)
            return -1;
        if ((size_t)(close - p) + 1 < len) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
            plen = len - (size_t)(port - p);
        }
        len = (size_t)(close - p) - 1;
        p++;
        if (len == 0 || len >= sizeof s)
            return -1;
        memcpy(s, p, len);
        s[len] = 0;
        memset(a, 0, sizeof *a);
        if (inet_pton(AF_INET6, s, &a->in6.sin6_addr) != 1)
            return -1;
        a->in6.sin6_family = AF_INET6;
    } else {
        const char *colon = memchr(p, ':', len);
        /* one colon: v4:port; more: a bare IPv6 address */
        if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - p) - 1)) {
            port = colon + 1;
            plen = len - (size_t)(port - p);
            len = (size_t)(colon - p);
        }
        if (len == 0 || len >= sizeof s)
            return -1;
        memcpy(s, p, len);
        s[len] = 0;
        memset(a, 0, sizeof *a);
        if (!port && strchr(s, ':')) {
            if (inet_pton(AF_INET6, s, &a->in6.sin6_addr) != 1)
                return -1;
            a->in6.sin6_family = AF_INET6;
        } else {
            if (inet_pton(AF_INET, s, &a->in4.sin_addr) != 1)
                return -1;
            a->in4.sin_family = AF_INET;
        }
    }
    if (port) { /* kept (REMOTE_PORT) when it is a number; "_obf" ports are dropped */
        unsigned v = 0;
        int ok = plen > 0 && plen <= 5;
        for (size_t i = 0; ok && i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                ok = 0;
            else
                v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (ok && v <= 65535) {
            if (a->sa.sa_family == AF_INET)
                a->in4.sin_port = htons((unsigned short)v);
            else
                a->in6.sin6_port = htons((unsigned short)v);
        } else if (plen < 2 || port[0] != '_') {
            return -1;
        }
    }
    return 0;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The "for" parameter of one Forwarded element ("for=1.2.3.4;proto=https"),
 * or len 0 when it has none. */
static struct http_str forwarded_for(const char *p, size_t len)
{
    struct http_str r = {NULL, 0};
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_space(p[i]) || p[i] == ';'))
            i++;
        size_t k = i;
        while (i < len && p[i] != '=' && p[i] != ';')
            i++;
        size_t klen = i - k;
        while (klen && is_space(p[k + klen - 1]))
            klen--;
        if (i >= len || p[i] != '=')
            continue;
        i++; /* '=' */
        while (i < len && is_space(p[i]))
            i++;
        size_t v = i;
        if (i < len && p[i] == '"') { /* quoted-string (a ';' may not hide in ours) */
            i++;
            while (i < len && p[i] != '"')
                i += p[i] == '\\' && i + 1 < len ? 2 : 1;
            if (i < len)
                i++;
        } else {
            while (i < len && p[i] != ';')
                i++;
        }
        size_t vlen = i - v;
        while (vlen && is_space(p[v + vlen - 1]))
            vlen--;
        if (klen == 3 && (p[k] | 0x20) == 'f' && (p[k + 1] | 0x20) == 'o' &&
            (p[k + 2] | 0x20) == 'r') {
            r.p = p + v;
            r.len = vlen;
            return r;
        }
    }
    return r;
}

int realip_resolve(const struct http_str *vals, int nvals, int kind, const struct realip_cidr *list,
                   int n, const union net_addr *peer, union net_addr *client)
{
    *client = *peer;
    int named = 0;
    /* walk the fields from the last one, each from its right end */
    for (int f = nvals - 1; f >= 0; f--) {
        const char *s = vals[f].p;
        size_t end = vals[f].len;
        while (end > 0) {
            /* the element before end: back to a comma outside quotes */
            size_t i = end;
            int quoted = 0;
            while (i > 0 && (quoted || s[i - 1] != ',')) {
                if (s[i - 1] == '"')
                    quoted = !quoted;
                i--;
            }
            size_t a = i, b = end;
            end = i ? i - 1 : 0;
            while (a < b && is_space(s[a]))
                a++;
            while (b > a && is_space(s[b - 1]))
                b--;
            if (a == b) {
                if (i == 0)
                    break;
                continue; /* an empty element (",,"): no one */
            }
            struct http_str e = {s + a, b - a};
            if (kind == REALIP_FORWARDED)
                e = forwarded_for(s + a, b - a);
            union net_addr x;
            if (!e.len || realip_parse_addr(e.p, e.len, &x) < 0)
                return named; /* unknown, obfuscated or garbage: stop here */
            *client = x;
            named = 1;
            if (!realip_trusted(list, n, &x))
                return 1; /* the first untrusted one from the right: the client */
            if (i == 0)
                break;
        }
    }
    return named;
}
