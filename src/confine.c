/* confine.c - open a path beneath a root directory, never outside it. */
#include "confine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int no_openat2; /* the kernel said ENOSYS once: do not ask again */

int confine_open(int rootfd, const char *rel, int flags)
{
    flags |= O_CLOEXEC;
    if (!no_openat2) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (unsigned long long)flags;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        int fd = -1;
        /* EAGAIN: a concurrent rename or mount made a ".." unsafe to
         * resolve; the kernel asks us to retry */
        for (int tries = 0; tries < 3; tries++) {
            fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
            if (fd >= 0 || errno != EAGAIN)
                break;
        }
        if (fd >= 0)
            return fd;
        if (errno == ENOSYS)
            no_openat2 = 1;
        else if (errno != EXDEV && errno != EPERM)
            return -1;
        /* EXDEV: "..", a symlink pointing outside, or an absolute symlink
         * (refused even when it points back inside): the fallback decides.
         * EPERM: some seccomp filters refuse syscalls they do not know. */
    }
    return confine_open_fallback(rootfd, rel, flags);
}

/* The path the kernel has for fd, NUL-terminated in buf; its length or -1. */
static ssize_t fd_path(int fd, char *buf, size_t cap)
{
    char proc[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, cap);
    if (n < 0)
        return -1;
    if ((size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    buf[n] = 0;
    return n;
}

/* 1 if fd is the directory rootfd or a file beneath it, 0 if not (errno
 * EXDEV), -1 if that cannot be known (errno set). */
static int is_inside(int rootfd, int fd)
{
    char root[PATH_MAX], real[PATH_MAX];
    ssize_t rl = fd_path(rootfd, root, sizeof root);
    ssize_t fl = rl > 0 ? fd_path(fd, real, sizeof real) : -1;
    if (rl <= 0 || fl <= 0)
        return -1;
    if (root[0] != '/' || real[0] != '/') { /* "anon_inode:...", "pipe:[...]" */
        errno = EXDEV;
        return 0;
    }
    if (rl == 1) /* the root is "/" */
        return 1;
    if (fl >= rl && memcmp(root, real, (size_t)rl) == 0 && (fl == rl || real[rl] == '/'))
        return 1;
    errno = EXDEV;
    return 0;
}

int confine_open_fallback(int rootfd, const char *rel, int flags)
{
    /* O_PATH opens nothing: a device's driver, a FIFO are not touched until
     * we know the file is inside the root */
    int pfd = openat(rootfd, rel, O_PATH | O_CLOEXEC | (flags & (O_NOFOLLOW | O_DIRECTORY)));
    if (pfd < 0)
        return -1;
    if (is_inside(rootfd, pfd) != 1) {
        int e = errno;
        close(pfd);
        errno = e;
        return -1;
    }
    if (flags & O_PATH)
        return pfd;
    /* Reopen the very file we checked (not the path again, which may have
     * been swapped meanwhile) through its /proc magic link. */
    char proc[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
    int fd = open(proc, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
    int e = errno;
    close(pfd);
    errno = e;
    return fd;
}

int confine_status(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case EXDEV:
    case ELOOP: return 404;
    case EACCES:
    case EPERM:
    case ENXIO:
    case ENODEV: return 403;
    case ENAMETOOLONG: return 414;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN: return 503;
    default: return 500;
    }
}
