/* The bench's "near the limit" line: a minimal single-threaded epoll echo server.
 * No transform at all (it echoes bytes unchanged), one shared 64 KiB read buffer,
 * a pending-write buffer only for a connection whose client is not reading (then
 * it stops reading that connection: backpressure). Half-close: echo what is left,
 * close. Same command line shape as the implementations, as far as the bench uses it:
 *
 *     echo-server server [--host 127.0.0.1] [--port 0]   -> "listening on ADDR:PORT"
 *
 * Not an implementation of the protocol; never registered in implementations.toml.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)

struct conn { int fd; char *pending; size_t pending_len, pending_off; int eof; };

static int ep;
static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void drop_conn(struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Writes what it can; returns 1 when everything is out, 0 when some is pending, -1 on error. */
static int flush_pending(struct conn *c) {
    while (c->pending_off < c->pending_len) {
        ssize_t n = write(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
        if (n < 0) { if (errno == EINTR) continue; return errno == EAGAIN ? 0 : -1; }
        c->pending_off += (size_t)n;
    }
    free(c->pending); c->pending = NULL; c->pending_len = c->pending_off = 0;
    return 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "server")) continue;
        if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-connections") && i + 1 < argc) ++i; /* accepted, unlimited */
        else { fprintf(stderr, "error: unexpected argument %s\n", argv[i]); return 2; }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    struct sockaddr_storage ss; socklen_t sl; int family;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss; struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) { family = AF_INET; a4->sin_family = AF_INET; a4->sin_port = htons(port); sl = sizeof *a4; }
    else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) { family = AF_INET6; a6->sin6_family = AF_INET6; a6->sin6_port = htons(port); sl = sizeof *a6; }
    else { fprintf(stderr, "error: numeric --host only\n"); return 2; }
    int lfd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&ss, sl) < 0 || listen(lfd, 4096) < 0) { fprintf(stderr, "error: cannot listen: %s\n", strerror(errno)); return 1; }
    sl = sizeof ss; getsockname(lfd, (struct sockaddr *)&ss, &sl);
    char name[INET6_ADDRSTRLEN];
    if (family == AF_INET) printf("listening on %s:%d\n", inet_ntop(AF_INET, &a4->sin_addr, name, sizeof name), ntohs(a4->sin_port));
    else printf("listening on [%s]:%d\n", inet_ntop(AF_INET6, &a6->sin6_addr, name, sizeof name), ntohs(a6->sin6_port));
    fflush(stdout);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static char buf[BUF];
    struct epoll_event events[512];
    while (!stop) {
        int n = epoll_wait(ep, events, 512, 500);
        for (int e = 0; e < n; e++) {
            struct conn *c = events[e].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = { .events = EPOLLIN, .data.ptr = nc };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (c->pending) { /* writable again */
                int r = flush_pending(c);
                if (r < 0) { drop_conn(c); continue; }
                if (r == 0) continue;
                if (c->eof) { drop_conn(c); continue; }
                struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                continue;
            }
            ssize_t r = read(c->fd, buf, BUF);
            if (r < 0) { if (errno == EAGAIN || errno == EINTR) continue; drop_conn(c); continue; }
            if (r == 0) { drop_conn(c); continue; }
            ssize_t off = 0;
            while (off < r) {
                ssize_t w = write(c->fd, buf + off, (size_t)(r - off));
                if (w < 0) { if (errno == EINTR) continue; break; }
                off += w;
            }
            if (off < r) {
                if (errno != EAGAIN) { drop_conn(c); continue; }
                c->pending_len = (size_t)(r - off);
                c->pending = malloc(c->pending_len);
                memcpy(c->pending, buf + off, c->pending_len);
                struct epoll_event cev = { .events = EPOLLOUT, .data.ptr = c };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
            }
        }
    }
    return 0;
}
