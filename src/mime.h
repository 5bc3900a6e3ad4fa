/* mime.h - file name -> media type: /etc/mime.types (Debian's media-types)
 * when present, the built-in table for what it does not list, --mime EXT=TYPE
 * over both, and --default-type for names without a known extension.
 * Text types get "; charset=utf-8" unless they name a charset. Built once at
 * startup (config_parse), read-only afterwards, inherited by every worker. */
#ifndef FH_MIME_H
#define FH_MIME_H

#include <stddef.h>

/* Read a mime.types file ("type ext ext ..." lines, '#' comments). Entries
 * already set (by --mime) are kept. -1 when the file cannot be read. */
int mime_load(const char *path);

/* --mime EXT=TYPE: add or override. -1 on a malformed EXT or TYPE. */
int mime_set(const char *ext, const char *type);

/* --default-type TYPE. -1 on a malformed TYPE. */
int mime_set_default(const char *type);

/* The type of the file name path[0..len) (its last segment's extension),
 * or the default type. The string lives until mime_free(). */
const char *mime_lookup(const char *path, size_t len);

/* Does the last segment of path[0..len) have an extension with a known
 * type (not the default)? (--fallback leaves such "assets" a 404.) */
int mime_known_ext(const char *path, size_t len);

/* Is the media type a valid "type/subtype[; params]" (for the flags)? */
int mime_type_valid(const char *type);

void mime_free(void);

#endif
