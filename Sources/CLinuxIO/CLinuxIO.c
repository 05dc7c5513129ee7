#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "CLinuxIO.h"

ssize_t sg_splice(int from, int to, size_t length) {
    return splice(from, NULL, to, NULL, length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

int sg_pipe(int fds[2], int size) {
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
    (void)fcntl(fds[1], F_SETPIPE_SZ, size);
    return 0;
}

int sg_accept(int listener) {
    return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int sg_original_destination(int fd, struct sockaddr_storage *original) {
    struct sockaddr_storage local;
    socklen_t length = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &length) != 0) return errno;
    length = sizeof *original;
    memset(original, 0, sizeof *original);
    if (local.ss_family == AF_INET6) {
        if (getsockopt(fd, SOL_IPV6, 80 /* IP6T_SO_ORIGINAL_DST */, original, &length) != 0) return errno;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)original;
        const struct sockaddr_in6 *here6 = (const struct sockaddr_in6 *)&local;
        // Conntrack knows every connection: one that was not redirected "was going" here.
        if (in6->sin6_port == here6->sin6_port && memcmp(&in6->sin6_addr, &here6->sin6_addr, 16) == 0) return ENOENT;
        original->ss_family = AF_INET6;
        return 0;
    }
    if (getsockopt(fd, SOL_IP, 80 /* SO_ORIGINAL_DST */, original, &length) != 0) return errno;
    const struct sockaddr_in *in = (const struct sockaddr_in *)original;
    const struct sockaddr_in *here = (const struct sockaddr_in *)&local;
    if (in->sin_port == here->sin_port && in->sin_addr.s_addr == here->sin_addr.s_addr) return ENOENT;
    original->ss_family = AF_INET;
    return 0;
}

const void *sg_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length) {
    return memmem(haystack, haystack_length, needle, needle_length);
}
