/* test_realip.c - the PROXY protocol parser (src/proxy.c) and trusted
 * proxies / forwarding chains (src/realip.c): pure functions, tables of
 * cases; every truncated prefix of a good header is AGAIN, and headers end
 * right before a PROT_NONE page, so an over-read crashes. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proxy.h"
#include "realip.h"
#include "tap.h"

static char *guard_page;
static size_t pagesz;

/* bytes placed so that the next one is unreadable */
static const void *at_edge(const void *b, size_t n)
{
    char *p = guard_page + pagesz - n;
    memcpy(p, b, n);
    return p;
}

static const char *addr_str(const union net_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof ip);
        port = ntohs(a->in4.sin_port);
    } else if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof ip);
        port = ntohs(a->in6.sin6_port);
    }
    snprintf(buf, cap, "%s %d", ip, port);
    return buf;
}

static void all_prefixes_again(const void *b, size_t n, const char *name)
{
    struct proxy_hdr h;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (proxy_parse(at_edge(b, i), i, &h) != PROXY_AGAIN)
            bad++;
    ok(bad == 0, "%.*s: every truncated prefix asks for more", (int)strcspn(name, "\r\n"), name);
}

static size_t v2(unsigned char *out, unsigned char vc, unsigned char fam, const void *body,
                 size_t blen)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(out, sig, 12);
    out[12] = vc;
    out[13] = fam;
    out[14] = (unsigned char)(blen >> 8);
    out[15] = (unsigned char)blen;
    memcpy(out + 16, body, blen);
    return 16 + blen;
}

static void test_v1(void)
{
    static const struct {
        const char *in;
        int len;          /* expected return: header length, PROXY_BAD, PROXY_AGAIN */
        int none, local;
        const char *src;  /* "ip port" */
    } cases[] = {
        {"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET", 45, 0, 0, "192.0.2.1 56324"},
        {"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", 44, 0, 0, "2001:db8::1 1"},
        {"PROXY UNKNOWN\r\n", 15, 0, 1, NULL},
        {"PROXY UNKNOWN 1.2.3.4 whatever\r\n", 32, 0, 1, NULL},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 1.2.3.4\x01 5.6.7.8 1 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_BAD, 0, 0, NULL},
        {"PROXY TCP4 192.0.2.1 198.51", PROXY_AGAIN, 0, 0, NULL},
        {"GET / HTTP/1.1\r\n\r\n", PROXY_BAD, 1, 0, NULL},
        {"POST / HTTP/1.1\r\n\r\n", PROXY_BAD, 1, 0, NULL},
        {"\x16\x03\x01\x02\x00", PROXY_BAD, 1, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proxy_hdr h;
        size_t n = strlen(cases[i].in);
        int r = proxy_parse(at_edge(cases[i].in, n), n, &h);
        char got[80];
        int good = r == cases[i].len && (r != PROXY_BAD || (h.error && h.none == cases[i].none));
        if (r > 0) {
            good = good && h.version == 1 && h.local == cases[i].local;
            if (cases[i].src)
                good = good && strcmp(addr_str(&h.src, got, sizeof got), cases[i].src) == 0;
            all_prefixes_again(cases[i].in, (size_t)r, cases[i].in);
        }
        int shown = (int)strcspn(cases[i].in, "\r\n");
        ok(good, "v1 %zu: %.*s -> %d (%s)", i, shown > 40 ? 40 : shown, cases[i].in, r,
           h.error ? h.error : "ok");
    }
    /* 107 bytes without CRLF: refused, not "more" */
    char longl[200];
    memset(longl, '1', sizeof longl);
    memcpy(longl, "PROXY TCP4 ", 11);
    struct proxy_hdr h;
    ok(proxy_parse(at_edge(longl, 107), 107, &h) == PROXY_BAD, "v1: no CRLF in 107 bytes: refused");
    ok(proxy_parse(at_edge(longl, 106), 106, &h) == PROXY_AGAIN, "v1: 106 bytes: more");
    /* the longest legal line is taken */
    const char *max = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ok(proxy_parse(at_edge(max, strlen(max)), strlen(max), &h) == (int)strlen(max) &&
           strlen(max) == PROXY_V1_MAX, "v1: the longest line (107 bytes) is taken");
}

static void test_v2(void)
{
    unsigned char buf[600], body[300];
    char got[80];
    struct proxy_hdr h;
    /* TCP over IPv4 */
    unsigned char a4[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB};
    size_t n = v2(buf, 0x21, 0x11, a4, sizeof a4);
    int r = proxy_parse(at_edge(buf, n), n, &h);
    ok(r == (int)n && !h.local && h.version == 2 &&
           strcmp(addr_str(&h.src, got, sizeof got), "192.0.2.1 56324") == 0,
       "v2 TCP4: %s", got);
    ok(strcmp(addr_str(&h.dst, got, sizeof got), "198.51.100.2 443") == 0, "v2 TCP4 dst: %s", got);
    all_prefixes_again(buf, n, "v2 TCP4");
    /* TCP over IPv6 with TLVs (ALPN, NOOP, SSL) */
    unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7, [16] = 0x20, [17] = 0x01, [31] = 8,
                            [32] = 0, [33] = 80, [34] = 1, [35] = 0xBB};
    size_t bl = 0;
    memcpy(body, a6, 36);
    bl = 36;
    memcpy(body + bl, "\x01\x00\x08http/1.1", 11);
    bl += 11;
    memcpy(body + bl, "\x04\x00\x00", 3);
    bl += 3;
    memcpy(body + bl, "\x20\x00\x05\x01\x00\x00\x00\x00", 8);
    bl += 8;
    n = v2(buf, 0x21, 0x21, body, bl);
    r = proxy_parse(at_edge(buf, n), n, &h);
    ok(r == (int)n && !h.local && h.ntlv == 3 &&
           strcmp(addr_str(&h.src, got, sizeof got), "2001:db8::7 80") == 0,
       "v2 TCP6 + 3 TLVs: %s, %u TLVs", got, h.ntlv);
    all_prefixes_again(buf, n, "v2 TCP6 + TLVs");
    /* a TLV that overflows the header */
    memcpy(body + 36, "\x01\x00\x09http/1.1", 11);
    n = v2(buf, 0x21, 0x21, body, 47);
    ok(proxy_parse(at_edge(buf, n), n, &h) == PROXY_BAD && h.error, "v2: TLV past the end: %s",
       h.error);
    n = v2(buf, 0x21, 0x11, a4, sizeof a4);
    buf[n++] = 0x01; /* 2 stray bytes counted in the length */
    buf[n++] = 0x00;
    buf[15] += 2;
    ok(proxy_parse(at_edge(buf, n), n, &h) == PROXY_BAD, "v2: truncated TLV head refused");
    /* LOCAL: a health check; the connection's own addresses */
    n = v2(buf, 0x20, 0x00, "", 0);
    ok(proxy_parse(at_edge(buf, n), n, &h) == 16 && h.local, "v2 LOCAL, no addresses");
    n = v2(buf, 0x20, 0x11, a4, sizeof a4);
    ok(proxy_parse(at_edge(buf, n), n, &h) == (int)n && h.local, "v2 LOCAL with addresses: kept ours");
    /* PROXY over UNSPEC, UNIX: ours */
    n = v2(buf, 0x21, 0x00, "", 0);
    ok(proxy_parse(at_edge(buf, n), n, &h) == 16 && h.local, "v2 PROXY UNSPEC: ours");
    memset(body, 0, 216);
    n = v2(buf, 0x21, 0x31, body, 216);
    ok(proxy_parse(at_edge(buf, n), n, &h) == (int)n && h.local, "v2 PROXY UNIX: ours");
    /* refusals, as soon as the byte that breaks the rule is there */
    n = v2(buf, 0x11, 0x11, a4, sizeof a4);
    ok(proxy_parse(at_edge(buf, 13), 13, &h) == PROXY_BAD, "v2: version 1 refused at byte 13");
    n = v2(buf, 0x22, 0x11, a4, sizeof a4);
    ok(proxy_parse(at_edge(buf, n), n, &h) == PROXY_BAD, "v2: command 2 refused");
    n = v2(buf, 0x21, 0x12, a4, sizeof a4);
    ok(proxy_parse(at_edge(buf, n), n, &h) == PROXY_BAD, "v2: UDP refused");
    n = v2(buf, 0x21, 0x41, a4, sizeof a4);
    ok(proxy_parse(at_edge(buf, 14), 14, &h) == PROXY_BAD, "v2: family 4 refused at byte 14");
    n = v2(buf, 0x21, 0x21, a4, sizeof a4); /* IPv6 needs 36 bytes */
    ok(proxy_parse(at_edge(buf, 16), 16, &h) == PROXY_BAD, "v2: length too short for IPv6");
    /* the signature, broken: no PROXY header at all */
    n = v2(buf, 0x21, 0x11, a4, sizeof a4);
    buf[7] = 'X';
    ok(proxy_parse(at_edge(buf, n), n, &h) == PROXY_BAD && h.none, "v2: bad signature: none");
    ok(proxy_parse(at_edge("\r\nGET", 5), 5, &h) == PROXY_BAD && h.none, "CRLF GET: none");
}

static void test_cidr(void)
{
    static const struct {
        const char *cidr;
        int valid;
    } parse[] = {
        {"10.0.0.0/8", 1}, {"192.0.2.1", 1}, {"0.0.0.0/0", 1}, {"::/0", 1}, {"::1", 1},
        {"2001:db8::/32", 1}, {"10.1.2.3/8", 0}, {"10.0.0.0/33", 0}, {"10.0.0.0/", 0},
        {"10.0.0.0/08", 0}, {"10.0.0/8", 0}, {"::1/129", 0}, {"x", 0}, {"", 0}, {"/8", 0},
        {"10.0.0.0/-1", 0}, {"2001:db8::1/32", 0},
    };
    for (size_t i = 0; i < sizeof parse / sizeof parse[0]; i++) {
        struct realip_cidr c;
        ok((realip_parse_cidr(parse[i].cidr, &c) == 0) == parse[i].valid, "cidr '%s' %s",
           parse[i].cidr, parse[i].valid ? "taken" : "refused");
    }
    struct realip_cidr list[3];
    realip_parse_cidr("10.0.0.0/8", &list[0]);
    realip_parse_cidr("192.0.2.128/25", &list[1]);
    realip_parse_cidr("2001:db8::/32", &list[2]);
    static const struct {
        const char *addr;
        int in;
    } match[] = {
        {"10.255.0.1", 1}, {"11.0.0.1", 0}, {"192.0.2.200", 1}, {"192.0.2.127", 0},
        {"2001:db8:1::1", 1}, {"2001:db9::1", 0}, {"[::ffff:10.1.1.1]", 1}, {"::ffff:11.1.1.1", 0},
    };
    for (size_t i = 0; i < sizeof match / sizeof match[0]; i++) {
        union net_addr a;
        int pr = realip_parse_addr(match[i].addr, strlen(match[i].addr), &a);
        ok(pr == 0 && realip_trusted(list, 3, &a) == match[i].in, "%s %s the trusted networks",
           match[i].addr, match[i].in ? "in" : "not in");
    }
}

static void test_chains(void)
{
    struct realip_cidr list[2];
    realip_parse_cidr("127.0.0.0/8", &list[0]);
    realip_parse_cidr("10.0.0.0/8", &list[1]);
    union net_addr peer;
    realip_parse_addr("127.0.0.1", 9, &peer);
    static const struct {
        int kind;
        const char *f1, *f2; /* one or two fields */
        const char *want;    /* the client, "ip port" */
        int named;
    } cases[] = {
        /* the right-most untrusted, never the left-most */
        {REALIP_XFF, "203.0.113.7", NULL, "203.0.113.7 0", 1},
        {REALIP_XFF, "6.6.6.6, 203.0.113.7", NULL, "203.0.113.7 0", 1},
        {REALIP_XFF, "6.6.6.6, 203.0.113.7, 10.1.1.1, 127.0.0.2", NULL, "203.0.113.7 0", 1},
        {REALIP_XFF, "6.6.6.6", "203.0.113.7", "203.0.113.7 0", 1},
        {REALIP_XFF, "203.0.113.7", "10.0.0.9", "203.0.113.7 0", 1},
        {REALIP_XFF, "  203.0.113.7  ,10.0.0.9 ", NULL, "203.0.113.7 0", 1},
        {REALIP_XFF, "10.0.0.1, 10.0.0.2", NULL, "10.0.0.1 0", 1}, /* all trusted: the left-most */
        {REALIP_XFF, "2001:db8::5", NULL, "2001:db8::5 0", 1},
        {REALIP_XFF, "[2001:db8::5]:8080", NULL, "2001:db8::5 8080", 1},
        {REALIP_XFF, "203.0.113.7:5555", NULL, "203.0.113.7 5555", 1},
        /* garbage stops the walk: the last believed stays */
        {REALIP_XFF, "6.6.6.6, unknown", NULL, "127.0.0.1 0", 0},
        {REALIP_XFF, "6.6.6.6, junk, 10.0.0.3", NULL, "10.0.0.3 0", 1},
        {REALIP_XFF, "", NULL, "127.0.0.1 0", 0},
        {REALIP_XFF, ",,", NULL, "127.0.0.1 0", 0},
        {REALIP_XFF, "1.2.3.4.5", NULL, "127.0.0.1 0", 0},
        {REALIP_XFF, "6.6.6.6, 10.0.0.9:", NULL, "127.0.0.1 0", 0}, /* an empty port (fuzzed) */
        /* RFC 7239 */
        {REALIP_FORWARDED, "for=192.0.2.60;proto=http;by=203.0.113.43", NULL, "192.0.2.60 0", 1},
        {REALIP_FORWARDED, "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\"", NULL,
         "2001:db8:cafe::17 4711", 1},
        {REALIP_FORWARDED, "For=\"198.51.100.17:_port\";proto=https", NULL, "198.51.100.17 0", 1},
        {REALIP_FORWARDED, "for=6.6.6.6", "proto=https;FOR=10.0.0.5, for=198.51.100.9", "198.51.100.9 0", 1},
        {REALIP_FORWARDED, "for=_hidden, for=10.0.0.2", NULL, "10.0.0.2 0", 1},
        {REALIP_FORWARDED, "for=unknown", NULL, "127.0.0.1 0", 0},
        {REALIP_FORWARDED, "proto=https", NULL, "127.0.0.1 0", 0},
        {REALIP_FORWARDED, "for=\"[2001:db8::1,]\"", NULL, "127.0.0.1 0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_str v[2] = {{cases[i].f1, strlen(cases[i].f1)},
                                {cases[i].f2, cases[i].f2 ? strlen(cases[i].f2) : 0}};
        union net_addr client;
        int named = realip_resolve(v, cases[i].f2 ? 2 : 1, cases[i].kind, list, 2, &peer, &client);
        char got[80];
        addr_str(&client, got, sizeof got);
        ok(named == cases[i].named && strcmp(got, cases[i].want) == 0, "%s '%s'%s%s -> %s",
           cases[i].kind == REALIP_XFF ? "XFF" : "Forwarded", cases[i].f1,
           cases[i].f2 ? " + " : "", cases[i].f2 ? cases[i].f2 : "", got);
    }
}

int main(void)
{
    pagesz = (size_t)sysconf(_SC_PAGESIZE);
    guard_page = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_page == MAP_FAILED || mprotect(guard_page + pagesz, pagesz, PROT_NONE) < 0)
        return 1;
    test_v1();
    test_v2();
    test_cidr();
    test_chains();
    munmap(guard_page, 2 * pagesz);
    return done_testing();
}
