/* owned_hdr.h - the response header fields the server writes itself: one
 * table for every gateway. CGI (cgi_head.c), C apps (h_app.c: fh_header) and
 * WSGI (wsgi.c, whose start_response headers go out through fh_header) all
 * consult it, with one policy: such a field is DROPPED, and the first drop of
 * each name in a process is logged (h_cgi.c, h_app.c). Why drop rather than
 * refuse: real programs send some of them (git http-backend and CGI.pm send
 * Date; PEP 3333 lets a server replace Date and Server), and none of them can
 * reach the client anyway, since the core frames the response and writes
 * Date, Server and Connection itself. Content-Length is not in the table: it
 * is a promise about the body that each gateway checks (a bad one is a
 * 500/502), parsed by http_parse_content_length().
 * Pure: no I/O, no allocation. */
#ifndef FH_OWNED_HDR_H
#define FH_OWNED_HDR_H

#include <stddef.h>

/* The index in the table (0 .. OWNED_HDR_COUNT-1) of the field name
 * name[0..len) (case-insensitive), or -1 when the app may send it. */
int owned_hdr_find(const char *name, size_t len);

/* The table's spelling of entry i. */
const char *owned_hdr_name(int i);

/* What a response's header lines ("Name: value\r\n" each, as in struct
 * response's hdr) say about transforming its body: the one place that reads
 * them for --compress of app, CGI and WSGI responses (conn.c;
 * docs/static.md). */
struct hdr_facts {
    const char *type;  /* the Content-Type value (not NUL-terminated), or NULL */
    size_t type_len;
    int encoded;       /* a Content-Encoding field: the body is coded already */
    int range;         /* a Content-Range field: a part, not the whole body */
    int no_transform;  /* Cache-Control: no-transform (RFC 9110 7.7): hands off */
    int vary_ae;       /* Vary names Accept-Encoding (or is "*") already */
};
void owned_hdr_facts(const char *hdr, size_t len, struct hdr_facts *f);

#define OWNED_HDR_COUNT 11 /* <= 32: cgi_head.dropped is a bit mask */

#endif
