/* module.h - the server's optional parts that live next to its binary
 * (wsgi.so, tls.so, compress.so): found from /proc/self/exe, so an installed
 * server (bin/ is a link to lib/forkhttpd/) finds them as the build does. */
#ifndef FH_MODULE_H
#define FH_MODULE_H

#include <stddef.h>

/* path = the directory of the real binary + "/" + file. 0, or -1 (errno set;
 * ENAMETOOLONG when it does not fit cap). */
int module_path(const char *file, char *path, size_t cap);

/* Load file from next to the binary and look up symbol: the symbol's address,
 * or NULL after one line on stderr that starts with what and names the file
 * (hint says what to install or run when the file is missing). The module is
 * never closed: children inherit it. *dl gets the handle (for dlclose when the
 * caller rejects the module), path the file's name (cap >= PATH_MAX). */
void *module_open(const char *what, const char *file, const char *hint, const char *symbol,
                  void **dl, char *path, size_t cap);

#endif
