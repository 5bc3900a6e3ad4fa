/* accept_enc.c - the Accept-Encoding chooser (see accept_enc.h). */
#include "accept_enc.h"

#include <string.h>
#include <strings.h>

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in
 * thousandths; -1 when malformed. */
static int qvalue(const char *p, const char *end)
{
    if (p == end || (*p != '0' && *p != '1'))
        return -1;
    int one = *p == '1', v = one ? 1000 : 0, scale = 100;
    p++;
    if (p < end) {
        if (*p != '.')
            return -1;
        p++;
        if (end - p > 3)
            return -1;
        for (; p < end; p++, scale /= 10) {
            if (*p < '0' || *p > '9' || (one && *p != '0'))
                return -1;
            v += (*p - '0') * scale;
        }
    }
    return v;
}

/* The q of one element's parameters [p, end) ("; q=0.5" ...): 1000 when
 * absent, -1 when malformed. */
static int params_q(const char *p, const char *end)
{
    int q = 1000;
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ';'))
            p++;
        const char *s = p;
        while (p < end && *p != ';')
            p++;
        const char *e = p;
        while (e > s && is_ows(e[-1]))
            e--;
        if (s == e)
            continue;
        if (e - s >= 2 && (s[0] == 'q' || s[0] == 'Q')) {
            const char *v = s + 1;
            while (v < e && is_ows(*v))
                v++;
            if (v < e && *v == '=') {
                v++;
                while (v < e && is_ows(*v))
                    v++;
                q = qvalue(v, e);
                if (q < 0)
                    return -1;
            }
        }
    }
    return q;
}

enum content_coding accept_enc_choose(const char *field, size_t len, unsigned have)
{
    if (!field)
        return ENC_IDENTITY;
    int q[ENC_COUNT] = {-1, -1, -1}; /* -1: not named */
    int star = -1;
    const char *p = field, *end = field + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end, *s = p;
        p = comma ? comma + 1 : end;
        while (s < e && is_ows(*s))
            s++;
        const char *t = s;
        while (t < e && *t != ';' && !is_ows(*t))
            t++;
        size_t n = (size_t)(t - s);
        if (n == 0)
            continue;
        int v = params_q(t, e);
        if (v < 0)
            continue;
        int *slot = NULL;
        if ((n == 4 && strncasecmp(s, "gzip", 4) == 0) || (n == 6 && strncasecmp(s, "x-gzip", 6) == 0))
            slot = &q[ENC_GZIP];
        else if (n == 2 && strncasecmp(s, "br", 2) == 0)
            slot = &q[ENC_BR];
        else if (n == 8 && strncasecmp(s, "identity", 8) == 0)
            slot = &q[ENC_IDENTITY];
        else if (n == 1 && *s == '*')
            slot = &star;
        if (slot && v > *slot)
            *slot = v; /* a coding named twice: the higher weight */
    }
    for (int i = 0; i < ENC_COUNT; i++)
        if (q[i] < 0)
            q[i] = i == ENC_IDENTITY ? (star == 0 ? 0 : 1) : (star > 0 ? star : 0);
    /* identity's default weight is the lowest that is still acceptable, so
     * any coding the client names wins over it */
    enum content_coding best = ENC_IDENTITY;
    int bq = q[ENC_IDENTITY];
    static const enum content_coding order[] = {ENC_GZIP, ENC_BR}; /* later wins ties */
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        enum content_coding c = order[i];
        if ((have & ENC_BIT(c)) && q[c] > 0 && q[c] >= bq) {
            best = c;
            bq = q[c];
        }
    }
    return best;
}

const char *accept_enc_name(enum content_coding e)
{
    return e == ENC_GZIP ? "gzip" : e == ENC_BR ? "br" : "";
}
