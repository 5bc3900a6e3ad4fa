/* mime.c - file name -> media type (see mime.h). */
#include "mime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* An open-addressing table ext -> full type (with the charset added). */
#define MT_SLOTS 4096 /* Debian's list has ~1300 extensions */
#define EXT_MAX 32
static struct mt {
    char *ext;
    char *type;
    int user; /* set by --mime: mime_load keeps it */
} table[MT_SLOTS];
static int used;
static char *default_type;

static unsigned ext_hash(const char *e, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)tolower((unsigned char)e[i])) * 16777619u;
    return h;
}

static struct mt *slot(const char *e, size_t n)
{
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
 * UTF-8 these days; --mime can say otherwise). */
static char *full_type(const char *t)
{
    int text = strncasecmp(t, "text/", 5) == 0 || strcasecmp(t, "application/javascript") == 0;
    size_t n = strlen(t) + 16;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", t, text && !strchr(t, ';') ? "; charset=utf-8" : "");
    return s;
}

static int put(const char *ext, size_t n, const char *type, int user)
{
    if (n == 0 || n > EXT_MAX || !mime_type_valid(type))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)ext[i]) && !strchr("-_+~", ext[i]))
            return -1;
    struct mt *m = slot(ext, n);
    if (m->ext && m->user && !user)
        return 0; /* --mime wins over the files */
    if (!m->ext) {
        if (used >= MT_SLOTS / 2)
            return 0; /* full enough: later ones are dropped */
        if (!(m->ext = strndup(ext, n)))
            return -1;
        used++;
    }
    char *t = full_type(type);
    if (!t)
        return -1;
    free(m->type);
    m->type = t;
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
    if (!mime_type_valid(type))
        return -1;
    char *t = full_type(type);
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
    return m->ext ? m->type : NULL;
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
    for (int i = 0; i < MT_SLOTS; i++) {
        free(table[i].ext);
        free(table[i].type);
        table[i].ext = table[i].type = NULL;
        table[i].user = 0;
    }
    used = 0;
    free(default_type);
    default_type = NULL;
}
