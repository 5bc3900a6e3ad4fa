/* mime.c - file name -> media type (see mime.h). */
#include "mime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

/* The built-in table: what a static site needs when /etc/mime.types is
 * missing (a container without media-types), and the types we prefer. */
static const struct {
    const char *ext;
    const char *type;
} builtin[] = {
    {"html", "text/html"},       {"htm", "text/html"},          {"css", "text/css"},
    {"js", "text/javascript"},   {"mjs", "text/javascript"},    {"json", "application/json"},
    {"txt", "text/plain"},       {"md", "text/markdown"},       {"csv", "text/csv"},
    {"xml", "application/xml"},  {"svg", "image/svg+xml"},      {"png", "image/png"},
    {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},        {"gif", "image/gif"},
    {"webp", "image/webp"},      {"avif", "image/avif"},        {"ico", "image/vnd.microsoft.icon"},
    {"pdf", "application/pdf"},  {"wasm", "application/wasm"},  {"mp4", "video/mp4"},
    {"webm", "video/webm"},      {"mp3", "audio/mpeg"},         {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},        {"woff", "font/woff"},         {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},         {"otf", "font/otf"},           {"zip", "application/zip"},
    {"gz", "application/gzip"},  {"br", "application/x-brotli"}, {"tar", "application/x-tar"},
    {"map", "application/json"}, {"webmanifest", "application/manifest+json"},
    {"c", "text/plain"},         {"h", "text/plain"},           {"py", "text/plain"},
    {"sh", "text/plain"},
};

/* An open-addressing table ext -> full type (with the charset added), and
 * its strings, in shared anonymous mappings: written once at start (the
 * options, /etc/mime.types), then only read. A private copy would be ~50
 * pages of every process that fork() copies and each exit unmaps (the fork
 * model's cost per connection, issue 19); a shared mapping's pages are not
 * copied, and a child faults in only the one or two it reads. */
#define MT_SLOTS 4096 /* Debian's list has ~1300 extensions */
#define EXT_MAX 32
#define ARENA_CAP (1 << 20) /* reserved; only what is used is ever touched */
struct mt {
    char *ext;
    char *type;
    int user; /* set by --mime: mime_load keeps it */
};
static struct mt *table; /* [MT_SLOTS] */
static char *arena;      /* the strings, bump-allocated */
static size_t arena_used;
static int used;
static char *default_type;

static void *shared_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* One mapping: the table, then the arena (a mapping more is work for every fork). */
#define TABLE_BYTES (MT_SLOTS * sizeof(struct mt))
static int ensure(void)
{
    if (!table) {
        char *m = shared_map(TABLE_BYTES + ARENA_CAP);
        if (!m)
            return -1;
        table = (struct mt *)(void *)m;
        arena = m + TABLE_BYTES;
    }
    return 0;
}

/* A copy of s[0..n) in the arena, NUL-terminated; NULL when it is full. */
static char *arena_dup(const char *s, size_t n)
{
    if (n + 1 > ARENA_CAP - arena_used)
        return NULL;
    char *d = arena + arena_used;
    memcpy(d, s, n);
    d[n] = 0;
    arena_used += n + 1;
    return d;
}

static unsigned ext_hash(const char *e, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)tolower((unsigned char)e[i])) * 16777619u;
    return h;
}

static struct mt *slot(const char *e, size_t n)
{
    if (!table)
        return NULL;
    for (unsigned i = ext_hash(e, n) % MT_SLOTS;; i = (i + 1) % MT_SLOTS)
        if (!table[i].ext || (strlen(table[i].ext) == n && strncasecmp(table[i].ext, e, n) == 0))
            return &table[i];
}

int mime_type_valid(const char *t)
{
    const char *slash = strchr(t, '/');
    if (!slash || slash == t || !slash[1] || strlen(t) > 200)
        return 0;
    for (const char *p = t; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (p < slash && !(isalnum(c) || strchr("!#$&^_.+-", c)))
            return 0;
    }
    return 1;
}

/* The type as sent: text types say their charset (the files of a site are
 * UTF-8 these days; --mime can say otherwise). In buf (cap > 216). */
static size_t full_type(const char *t, char *buf, size_t cap)
{
    int text = strncasecmp(t, "text/", 5) == 0 || strcasecmp(t, "application/javascript") == 0;
    int n = snprintf(buf, cap, "%s%s", t, text && !strchr(t, ';') ? "; charset=utf-8" : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static int put(const char *ext, size_t n, const char *type, int user)
{
    if (n == 0 || n > EXT_MAX || !mime_type_valid(type))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)ext[i]) && !strchr("-_+~", ext[i]))
            return -1;
    if (ensure() < 0)
        return -1;
    struct mt *m = slot(ext, n);
    if (m->ext && m->user && !user)
        return 0; /* --mime wins over the files */
    char full[256];
    size_t tn = full_type(type, full, sizeof full);
    if (!tn)
        return -1;
    if (m->type && strcmp(m->type, full) == 0) {
        m->user |= user;
        return 0;
    }
    if (!m->ext && used >= MT_SLOTS / 2)
        return 0; /* full enough: later ones are dropped */
    char *e = m->ext ? m->ext : arena_dup(ext, n), *t = e ? arena_dup(full, tn) : NULL;
    if (!t)
        return 0; /* the arena is full: later ones are dropped */
    if (!m->ext)
        used++;
    m->ext = e;
    m->type = t; /* (a replaced type stays in the arena, unused) */
    m->user |= user;
    return 0;
}

int mime_set(const char *ext, const char *type)
{
    if (ext[0] == '.')
        ext++;
    return put(ext, strlen(ext), type, 1);
}

int mime_set_default(const char *type)
{
    char full[256];
    size_t n = mime_type_valid(type) ? full_type(type, full, sizeof full) : 0;
    char *t = n ? strdup(full) : NULL;
    if (!t)
        return -1;
    free(default_type);
    default_type = t;
    return 0;
}

int mime_load(const char *path)
{
    FILE *f = path ? fopen(path, "re") : NULL;
    char line[1024];
    /* the built-in table first, the file over it (a type it gives wins) */
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        put(builtin[i].ext, strlen(builtin[i].ext), builtin[i].type, 0);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *type = strtok_r(line, " \t\r\n", &save);
        if (!type || type[0] == '#')
            continue;
        for (char *e = strtok_r(NULL, " \t\r\n", &save); e && e[0] != '#';
             e = strtok_r(NULL, " \t\r\n", &save)) {
            put(e, strlen(e), type, 0);
        }
    }
    fclose(f);
    return 0;
}

static const char *ext_of(const char *path, size_t len, size_t *n)
{
    for (size_t i = len; i > 0; i--) {
        if (path[i - 1] == '/')
            break;
        if (path[i - 1] == '.') {
            *n = len - i;
            return i >= 2 && path[i - 2] != '/' ? path + i : NULL; /* ".bashrc": no ext */
        }
    }
    return NULL;
}

static const char *known(const char *path, size_t len)
{
    size_t n = 0;
    const char *e = ext_of(path, len, &n);
    if (!e || n == 0 || n > EXT_MAX)
        return NULL;
    struct mt *m = slot(e, n);
    return m && m->ext ? m->type : NULL;
}

const char *mime_lookup(const char *path, size_t len)
{
    const char *t = known(path, len);
    return t ? t : default_type ? default_type : "application/octet-stream";
}

int mime_known_ext(const char *path, size_t len)
{
    return known(path, len) != NULL;
}

void mime_free(void)
{
    if (table)
        munmap(table, TABLE_BYTES + ARENA_CAP);
    table = NULL;
    arena = NULL;
    arena_used = 0;
    used = 0;
    free(default_type);
    default_type = NULL;
}
