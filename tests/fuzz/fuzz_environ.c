/* fuzz_environ.c - libFuzzer driver for the environ builder (src/environ.c):
 * any request head the parser accepts, turned into CGI/WSGI variables.
 * Invariants: every variable name is "HTTP_" + [A-Z0-9_]; never HTTP_PROXY,
 * HTTP_TRANSFER_ENCODING, HTTP_CONTENT_TYPE or HTTP_CONTENT_LENGTH; no value
 * holds CR, LF or NUL; each name comes once and the iteration never stops
 * early: every field env_field_ok() accepts is in some variable, found again
 * by env_find_var(); the sized and the filled value agree; SERVER_NAME lies
 * inside Host and has no port. Also http_parse_content_length on each value:
 * an accepted one is digits (and OWS) only, and says what they say. */
#include "environ.h"
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fenv_check_clen(struct http_str v)
{
    int64_t n = -1;
    if (http_parse_content_length(v.p, v.len, &n) < 0)
        return;
    int64_t want = 0;
    int digits = 0;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (c >= '0' && c <= '9') {
            want = want * 10 + (c - '0');
            digits++;
        } else if (c != ' ' && c != '\t') {
            abort();
        }
    }
    if (digits == 0 || digits > 18 || n != want) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_req h;
    static const struct http_limits lim = { 200, 4096, HTTP_MAX_HEADERS };
    http_req_init(&h);
    if (http_parse_request(&h, (const char *)data, size, &lim) <= 0)
        return 0;

    static int seen[HTTP_MAX_HEADERS]; /* field index -> 1: listed as a variable */
    memset(seen, 0, sizeof seen);
    size_t pos = 0;
    int i, last = -1;
    while ((i = env_next_field(&h, &pos)) >= 0) {
        if (i <= last || (size_t)i >= h.nheaders || seen[i]) abort();
        last = i;
        seen[i] = 1;
        char var[ENV_VAR_MAX + 1];
        size_t vl = env_var_name(&h, i, var, sizeof var);
        if (vl < 6 || vl != strlen(var) || memcmp(var, "HTTP_", 5) != 0) abort();
        for (size_t k = 5; k < vl; k++)
            if (!((var[k] >= 'A' && var[k] <= 'Z') || (var[k] >= '0' && var[k] <= '9') ||
                  var[k] == '_'))
                abort();
        if (!strcmp(var, "HTTP_PROXY") || !strcmp(var, "HTTP_TRANSFER_ENCODING") ||
            !strcmp(var, "HTTP_CONTENT_TYPE") || !strcmp(var, "HTTP_CONTENT_LENGTH"))
            abort();
        if (env_find_var(&h, var) != i) abort();
        size_t n = env_var_value(&h, i, NULL, 0);
        char *v = malloc(n + 1);
        if (!v) abort();
        v[n] = 'x'; /* a canary: the fill must stop at n */
        if (env_var_value(&h, i, v, n) != n || v[n] != 'x') abort();
        for (size_t k = 0; k < n; k++)
            if (v[k] == '\r' || v[k] == '\n' || v[k] == '\0') abort();
        free(v);
    }
    /* nothing acceptable left out: each exported field is in the variable
     * listed at the first field of its name */
    for (size_t j = 0; j < h.nheaders; j++) {
        struct http_str nm = h.headers[j].name;
        fenv_check_clen(h.headers[j].value);
        if (!env_field_ok(nm)) continue;
        size_t f = 0;
        while (f < j && !(h.headers[f].name.len == nm.len &&
                          strncasecmp(h.headers[f].name.p, nm.p, nm.len) == 0))
            f++;
        if (!seen[f]) abort();
    }
    struct http_str sn = env_server_name(&h);
    if (sn.len > h.host.len || (sn.len && sn.p != h.host.p)) abort();
    if (sn.len && sn.p[0] != '[' && memchr(sn.p, ':', sn.len)) abort();
    struct http_str ct = env_content_type(&h);
    if (ct.p && (ct.p < (const char *)data || ct.p + ct.len > (const char *)data + size)) abort();
    return 0;
}
