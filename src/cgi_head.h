/* cgi_head.h - the CGI response header block (RFC 3875 6.2-6.3), parsed
 * without I/O: h_cgi.c feeds it what the script wrote so far, the fuzzer
 * (tests/fuzz/fuzz_cgi.c) feeds it anything. */
#ifndef CGI_HEAD_H
#define CGI_HEAD_H

#include <stddef.h>
#include <stdint.h>

struct cgi_head {
    int status;       /* the answer's status: Status, else 302 for Location, else 200 */
    int64_t length;   /* the Content-Length the script promised, -1: none */
    const char *why;  /* when the block is invalid: why, for the log line */
    unsigned dropped; /* bit i: a field owned_hdr_name(i) was dropped */
};

/* Where does the header block in buf[0..len) end (just past its empty line,
 * LF or CRLF)? 0 while it has not ended. *scan (0 at first) remembers how
 * far complete lines were already looked at, so that a block arriving in
 * many small reads is scanned once. */
size_t cgi_head_end(const char *buf, size_t len, size_t *scan);

/* Parse the complete header block buf[0..end). Fields the script may pass
 * on are appended to hdr[*hdr_len..cap) as "Name: value\r\n"; those the
 * core writes itself (owned_hdr.h: framing, Connection, Date, Server) are
 * dropped and noted in h->dropped. Content-Length is checked
 * (http_parse_content_length) and returned in h->length.
 * 0, or -1 with h->why set (the caller answers 502). */
int cgi_head_parse(const char *buf, size_t end, struct cgi_head *h, char *hdr, size_t cap,
                   size_t *hdr_len);

#endif
