/*
 * cserver: the machine's limit for the benchmarks -- a plain C epoll server on loopback.
 *   cserver echo [PORT]      TCP echo and UDP echo on the same port
 *   cserver daytime [PORT]   TCP daytime (RFC 867): write the line, close
 * Level-triggered epoll, accept4 in a loop until EAGAIN, TCP_NODELAY, one thread.
 * Prints "PORT n" once listening (PORT 0 or absent: the kernel picks one).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[65536];

int main(int argc, char **argv) {
    int daytime = argc > 1 && !strcmp(argv[1], "daytime");
    if (argc < 2 || (!daytime && strcmp(argv[1], "echo"))) {
        fprintf(stderr, "usage: cserver echo|daytime [PORT]\n");
        return 2;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 2 ? atoi(argv[2]) : 0)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1, ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024) || getsockname(ls, (struct sockaddr *)&a, &len)) {
        perror("listen");
        return 1;
    }
    int us = -1, ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
    if (!daytime) { /* UDP echo on the same port number */
        us = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (bind(us, (struct sockaddr *)&a, sizeof a)) { perror("udp bind"); return 1; }
        e.data.fd = us;
        epoll_ctl(ep, EPOLL_CTL_ADD, us, &e);
    }
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (daytime) {
                        char line[128];
                        time_t t = time(NULL);
                        size_t k = strftime(line, sizeof line, "%A, %B %d, %Y %H:%M:%S-%Z\r\n", localtime(&t));
                        if (write(c, line, k) < 0) { /* the client went away: nothing to do */ }
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
            } else if (fd == us) {
                struct sockaddr_storage from;
                for (;;) {
                    socklen_t fl = sizeof from;
                    ssize_t k = recvfrom(us, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
                    if (k < 0) break;
                    sendto(us, buf, (size_t)k, 0, (struct sockaddr *)&from, fl);
                }
            } else {
                ssize_t k = read(fd, buf, sizeof buf);
                if (k <= 0) {
                    if (k < 0 && errno == EAGAIN) continue;
                    close(fd);
                    continue;
                }
                /* blocking-style echo of what arrived: loopback buffers absorb it; on EAGAIN, wait */
                ssize_t off = 0;
                while (off < k) {
                    ssize_t w = write(fd, buf + off, (size_t)(k - off));
                    if (w < 0) {
                        if (errno == EAGAIN) {
                            /* rare on loopback (bulk only): wait for this socket alone, briefly */
                            struct pollfd p = {.fd = fd, .events = POLLOUT};
                            if (poll(&p, 1, 1000) <= 0) break;
                            continue;
                        }
                        break;
                    }
                    off += w;
                }
                if (off < k) close(fd);
            }
        }
    }
}
