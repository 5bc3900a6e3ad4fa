/* environ.c - request header fields and head metadata as CGI/WSGI variables
 * (the rules are in environ.h). Pure: no I/O, no allocation. */
#include <string.h>
#include <strings.h>

#include "environ.h"

/* Fields that never become HTTP_* variables, whatever their spelling. */
static const char *const skipped[] = {
    "Proxy",             /* httpoxy */
    "Content-Type",      /* CONTENT_TYPE */
    "Content-Length",    /* CONTENT_LENGTH */
    "Transfer-Encoding", /* the body was de-chunked */
    "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
};

int env_field_ok(struct http_str name)
{
    if (name.len == 0 || name.len > ENV_FIELD_MAX)
        return 0;
    for (size_t i = 0; i < name.len; i++) {
        char c = name.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
    }
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        if (http_str_ieq(name, skipped[i]))
            return 0;
    return 1;
}

static int same_name(struct http_str a, struct http_str b)
{
    return a.len == b.len && strncasecmp(a.p, b.p, a.len) == 0;
}

int env_next_field(const struct http_req *h, size_t *pos)
{
    while (*pos < h->nheaders) {
        size_t i = (*pos)++;
        struct http_str n = h->headers[i].name;
        if (!env_field_ok(n))
            continue;
        size_t j = 0;
        while (j < i && !same_name(h->headers[j].name, n))
            j++;
        if (j == i) /* else listed already, with its first occurrence */
            return (int)i;
    }
    return -1;
}

static char var_char(char c)
{
    return c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
}

size_t env_var_name(const struct http_req *h, int i, char *out, size_t cap)
{
    struct http_str n = h->headers[i].name;
    if (cap < 5 + n.len + 1)
        return 0;
    memcpy(out, "HTTP_", 5);
    for (size_t k = 0; k < n.len; k++)
        out[5 + k] = var_char(n.p[k]);
    out[5 + n.len] = 0;
    return 5 + n.len;
}

static size_t put(char *out, size_t cap, size_t at, const char *p, size_t n)
{
    if (at < cap)
        memcpy(out + at, p, n < cap - at ? n : cap - at);
    return at + n;
}

size_t env_var_value(const struct http_req *h, int i, char *out, size_t cap)
{
    struct http_str n = h->headers[i].name;
    const char *sep = http_str_ieq(n, "Cookie") ? "; " : ", ";
    size_t len = 0;
    for (size_t j = (size_t)i; j < h->nheaders; j++) {
        if (!same_name(h->headers[j].name, n))
            continue;
        if ((int)j != i)
            len = put(out, cap, len, sep, 2);
        len = put(out, cap, len, h->headers[j].value.p, h->headers[j].value.len);
    }
    return len;
}

int env_find_var(const struct http_req *h, const char *var)
{
    if (strncmp(var, "HTTP_", 5) != 0)
        return -1;
    var += 5;
    size_t vl = strlen(var);
    for (size_t i = 0; i < h->nheaders; i++) {
        struct http_str n = h->headers[i].name;
        if (n.len != vl || !env_field_ok(n))
            continue;
        size_t k = 0;
        while (k < vl && var_char(n.p[k]) == var[k])
            k++;
        /* exported names have no '_': the first match is the first field of
         * the only name that maps to var */
        if (k == vl)
            return (int)i;
    }
    return -1;
}

struct http_str env_server_name(const struct http_req *h)
{
    struct http_str s = h->host;
    if (!s.p || s.len == 0) {
        s.p = "";
        s.len = 0;
        return s;
    }
    size_t n = 0;
    if (s.p[0] == '[') { /* [v6]:port */
        while (n < s.len && s.p[n] != ']')
            n++;
        n = n < s.len ? n + 1 : s.len;
    } else {
        while (n < s.len && s.p[n] != ':')
            n++;
    }
    s.len = n;
    return s;
}

struct http_str env_content_type(const struct http_req *h)
{
    const struct http_header *ct = http_req_header(h, "Content-Type");
    struct http_str none = {NULL, 0};
    return ct ? ct->value : none;
}

int env_has_body(const struct http_req *h)
{
    return h->content_length >= 0 || h->chunked;
}

const char *env_protocol(const struct http_req *h)
{
    return h->version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

const char *env_tls_var(const struct tls_facts *t, int i, const char **name)
{
    static const char *const names[ENV_TLS_VARS] = {"HTTPS", "SSL_PROTOCOL", "SSL_CIPHER",
                                                    "SSL_TLS_SNI"};
    *name = i >= 0 && i < ENV_TLS_VARS ? names[i] : "";
    if (!t)
        return NULL;
    switch (i) {
    case 0: return "on";
    case 1: return t->protocol;
    case 2: return t->cipher;
    case 3: return t->sni && *t->sni ? t->sni : NULL;
    default: return NULL;
    }
}
