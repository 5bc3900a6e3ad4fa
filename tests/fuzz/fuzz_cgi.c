/* fuzz_cgi.c - libFuzzer driver for the CGI response header parser
 * (src/cgi_head.c): what a script writes on stdout, before its body.
 * data[0] picks where the output is split in two reads and how much room the
 * header buffer has; the rest is the script's output. Invariants: the block
 * ends at the same place however it arrives; an accepted block yields a final
 * status and header lines that cannot split the response (every CR and LF is
 * a line end, every name a token, no framing field passed through). */
#include "cgi_head.h"
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ieq_prefix(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':')
        return 0;
    struct http_str s = {line, k};
    return http_str_ieq(s, name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    if (!buf) abort();
    memcpy(buf, data + 1, len);

    /* whole, then in two reads: the same end */
    size_t scan = 0;
    size_t end = cgi_head_end(buf, len, &scan);
    size_t split = len ? (data[0] * len) / 255 : 0;
    size_t scan2 = 0;
    size_t end2 = cgi_head_end(buf, split, &scan2);
    if (!end2)
        end2 = cgi_head_end(buf, len, &scan2);
    if (end != end2) abort();
    if (end && (end > len || buf[end - 1] != '\n')) abort();
    if (!end) { free(buf); return 0; }

    size_t cap = data[0] & 1 ? 64 : 4096; /* a tight buffer, or the core's */
    char *hdr = malloc(cap);
    if (!hdr) abort();
    size_t hdr_len = 0;
    struct cgi_head h;
    int rc = cgi_head_parse(buf, end, &h, hdr, cap, &hdr_len);
    if (rc == -1) {
        if (!h.why) abort();
    } else if (rc == 0) {
        if (h.status < 200 || h.status > 599) abort();
        if (h.length < -1) abort();
        if (hdr_len >= cap) abort();
        /* each line: token ":" SP value CRLF, no CR/LF/NUL inside */
        size_t pos = 0;
        while (pos < hdr_len) {
            const char *line = hdr + pos;
            const char *crlf = memchr(line, '\r', hdr_len - pos);
            if (!crlf || crlf + 1 >= hdr + hdr_len || crlf[1] != '\n') abort();
            size_t n = (size_t)(crlf - line);
            const char *colon = memchr(line, ':', n);
            if (!colon || colon == line) abort();
            for (const char *p = line; p < colon; p++)
                if (!http_is_tchar((unsigned char)*p)) abort();
            for (const char *p = colon; p < crlf; p++)
                if (*p == '\n' || *p == '\0') abort();
            if (ieq_prefix(line, n, "Transfer-Encoding") || ieq_prefix(line, n, "Connection") ||
                ieq_prefix(line, n, "Content-Length") || ieq_prefix(line, n, "Status"))
                abort();
            pos += n + 2;
        }
    } else {
        abort();
    }
    free(hdr);
    free(buf);
    return 0;
}
