/* realip.h - who the client is behind trusted proxies: --trusted-proxy CIDR
 * lists, and the X-Forwarded-For / Forwarded (RFC 7239) chains a proxy
 * appends to. Pure: no I/O, no malloc, no globals (conn.c calls it with
 * cfg's list; tests/unit/test_realip.c feeds it tables).
 *
 * The rule (nginx's real_ip_recursive, HAProxy's and RFC 7239 section 7.4's
 * advice): a forwarding header is believed only from a trusted peer, and
 * only as far as proxies we trust wrote it. Every proxy appends the address
 * it got the request from, so the chain is read from the right: skip
 * addresses of trusted proxies; the first untrusted one is the client.
 * Never the left-most: whoever sends the request writes that one. */
#ifndef FH_REALIP_H
#define FH_REALIP_H

#include <stddef.h>

#include "http_parse.h" /* struct http_str */
#include "net.h"        /* union net_addr */

#define REALIP_MAX_CIDRS 64

/* An IPv4 network is kept as its IPv4-mapped IPv6 form (::ffff:a.b.c.d/96+n),
 * so one comparison serves both families (and v4-mapped peers of a "::"
 * listener match IPv4 networks). */
struct realip_cidr {
    unsigned char addr[16];
    unsigned char bits; /* 0..128 */
};

/* "10.0.0.0/8", "192.0.2.1" (/32), "2001:db8::/32", "::1" (/128). Host bits
 * set beyond the prefix are refused (a typo, not a network). 0 or -1. */
int realip_parse_cidr(const char *s, struct realip_cidr *out);

/* Is a (an IPv4, IPv6 or v4-mapped peer) inside one of list[0..n)? */
int realip_trusted(const struct realip_cidr *list, int n, const union net_addr *a);

enum { REALIP_XFF = 0, REALIP_FORWARDED = 1 };

/* The client behind a trusted peer: vals[0..nvals) are the values of every
 * field of the header (X-Forwarded-For, or Forwarded's for= parameters), in
 * the order received, which form one comma-separated chain. Walk it from the
 * right, starting at peer (the caller checked that it is trusted): each
 * trusted address hands over to the one on its left; the first untrusted
 * one is the client. An element that is no address ("unknown", an
 * obfuscated "_name", garbage) ends the walk: the last address believed
 * stays the answer. Returns 1 with *client set when the chain named
 * someone, 0 when it held no usable address (then *client = *peer). */
int realip_resolve(const struct http_str *vals, int nvals, int kind, const struct realip_cidr *list,
                   int n, const union net_addr *peer, union net_addr *client);

/* One chain element as an address: "192.0.2.1", "192.0.2.1:80", "2001:db8::1",
 * "[2001:db8::1]" or "[2001:db8::1]:80"; surrounding double quotes are
 * dropped (a Forwarded value). 0 or -1. */
int realip_parse_addr(const char *p, size_t len, union net_addr *a);

#endif
