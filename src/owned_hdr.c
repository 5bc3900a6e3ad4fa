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

/* Does the comma-separated list v[0..n) have the token tok (no case)? */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t' && v[i] != '=')
            i++;
        if (i - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return 1;
        while (i < n && v[i] != ',') { /* the rest of the element (="a,b" quoted: see below) */
            if (v[i] == '"') {
                for (i++; i < n && v[i] != '"'; i++)
                    if (v[i] == '\\')
                        i++;
            }
            i++;
        }
    }
    return 0;
}

static int name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

void owned_hdr_facts(const char *hdr, size_t len, struct hdr_facts *f)
{
    memset(f, 0, sizeof *f);
    const char *p = hdr, *end = hdr + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *e = eol ? eol : end;
        if (e > p && e[-1] == '\r')
            e--;
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (colon) {
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(e - v);
            if (name_is(p, nl, "Content-Type") && !f->type) {
                f->type = v;
                f->type_len = vl;
            } else if (name_is(p, nl, "Content-Encoding")) {
                f->encoded = 1;
            } else if (name_is(p, nl, "Content-Range")) {
                f->range = 1;
            } else if (name_is(p, nl, "Cache-Control")) {
                f->no_transform |= has_token(v, vl, "no-transform");
            } else if (name_is(p, nl, "Vary")) {
                f->vary_ae |= has_token(v, vl, "accept-encoding") || has_token(v, vl, "*");
            }
        }
        p = next;
    }
}
