/* bare_fork.c - the fork model's ceiling for `make bench` (issue 19): a bare
 * fork-per-connection server that reads a request and writes a fixed answer.
 * No parsing, no files, no logging: what is left is accept, fork, one read,
 * one write, _exit, close, and the reaping. forkhttpd --model fork can only
 * approach this, never pass it.
 *
 *   bare_fork PORT        (127.0.0.1; prints "Serving HTTP on 127.0.0.1 port N")
 *
 * Children are reaped by a SIGCHLD handler (waitpid WNOHANG loop), as in the
 * tutorial; SIGTERM ends the server. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n"
                             "Content-Type: text/plain\r\n\r\nHello, World!\n";

static void reap(int signo)
{
    (void)signo;
    int e = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = e;
}

int main(int argc, char **argv)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 0)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &len) < 0) {
        perror("bare_fork");
        return 1;
    }
    struct sigaction sa = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGCHLD, &sa, NULL);
    printf("Serving HTTP on 127.0.0.1 port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            perror("accept");
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            char buf[4096];
            ssize_t n = read(fd, buf, sizeof buf); /* one read holds wrk's request */
            if (n > 0 && write(fd, answer, sizeof answer - 1) < 0)
                _exit(1);
            _exit(0); /* the close is the kernel's, at exit */
        }
        close(fd);
    }
}
