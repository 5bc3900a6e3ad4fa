/* confine.h - open a path beneath a root directory and never outside it.
 * The one place static files (h_static.c) and CGI scripts (h_cgi.c) resolve
 * a request path to a file; no I/O but the opens (and readlink of
 * /proc/self/fd to check a fallback open). */
#ifndef FH_CONFINE_H
#define FH_CONFINE_H

#include <fcntl.h>
#include <sys/stat.h>

/* Open rel (relative: no leading '/'; "." is the root itself) beneath the
 * directory rootfd (an O_PATH fd is fine). flags are open(2) flags: O_PATH,
 * or O_RDONLY with O_NONBLOCK (so a FIFO does not block); O_CLOEXEC is
 * always added. Whatever rel says, and whatever symlinks it meets — "..",
 * a symlink pointing outside, absolute or relative — the result is a file
 * inside the root, or -1 with errno set (EXDEV or ELOOP: it would leave
 * the root).
 *
 * Linux >= 5.6 resolves with openat2(RESOLVE_BENEATH). The kernel refuses
 * absolute symlinks there even when they point back inside the root; for
 * those (EXDEV), and for kernels without openat2 (ENOSYS), or where a
 * seccomp filter refuses it (EPERM), confine_open_fallback decides. */
int confine_open(int rootfd, const char *rel, int flags);

/* The check-then-open path, public for the unit tests: resolve rel with
 * O_PATH (which opens nothing: no device driver, no FIFO is touched), read
 * where it really is from /proc/self/fd, refuse (EXDEV) anything outside the
 * root, and only then reopen it through /proc/self/fd/N with flags. */
int confine_open_fallback(int rootfd, const char *rel, int flags);

/* The HTTP status for an errno of confine_open (or of the open that
 * follows it), the same for every handler:
 *   ENOENT, ENOTDIR        404  nothing there
 *   EXDEV, ELOOP           404  outside the root (or a symlink loop): outside
 *                               looks like not there, so a client learns
 *                               nothing about the file system beyond the root
 *   EACCES, EPERM          403  there, but the server may not read it
 *   ENXIO, ENODEV          403  a socket or a device: never served
 *   ENAMETOOLONG           414  the path is too long (the URI, really)
 *   EMFILE, ENFILE, ENOMEM,
 *   EAGAIN                 503  out of a resource, or a rename race that
 *                               kept openat2 from resolving: try again
 *   anything else          500 */
int confine_status(int err);

/* fstat() of an open file, for the request path. glibc's fstat() is
 * fstatat(fd, "", AT_EMPTY_PATH) with the "" in libc's read-only data, a page
 * a fork child would map for that one byte (issue 19); this "" is on the
 * caller's stack, which is mapped already. */
static inline int confine_fstat(int fd, struct stat *st)
{
    char empty[1] = "";
    return fstatat(fd, empty, st, AT_EMPTY_PATH);
}

#endif
