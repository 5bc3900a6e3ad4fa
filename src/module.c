/* module.c - see module.h. */
#include "module.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int module_path(const char *file, char *path, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", path, cap);
    if (n <= 0)
        return -1;
    if ((size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    path[n] = 0;
    char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash + 1 - path) : 0;
    if (dir + strlen(file) + 1 > cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(path + dir, file);
    return 0;
}

void *module_open(const char *what, const char *file, const char *hint, const char *symbol,
                  void **dl, char *path, size_t cap)
{
    *dl = NULL;
    if (module_path(file, path, cap) < 0) {
        fprintf(stderr, "forkhttpd: %s: cannot find the server's own binary (/proc/self/exe): %s\n",
                what, strerror(errno));
        return NULL;
    }
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "forkhttpd: %s needs %s (%s): %s\n", what, path, hint, strerror(errno));
        return NULL;
    }
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        const char *why = dlerror();
        fprintf(stderr, "forkhttpd: %s: cannot load %s: %s\n", what, path, why ? why : "?");
        return NULL;
    }
    void *sym = dlsym(*dl, symbol);
    if (!sym)
        fprintf(stderr, "forkhttpd: %s: %s is not this server's module (no %s); rebuild with make\n",
                what, path, symbol);
    return sym;
}
