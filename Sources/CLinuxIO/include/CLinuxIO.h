// The Linux I/O calls the egress proxy's socket front uses that Swift's Glibc module does not
// export: epoll and eventfd (headers it leaves out), and splice, pipe2, accept4 and memmem, which
// need _GNU_SOURCE and are therefore wrapped in CLinuxIO.c.
#ifndef CLINUXIO_H
#define CLINUXIO_H
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

enum { SG_EPOLLEXCLUSIVE = 1u << 28 };

/// splice(2) with SPLICE_F_MOVE | SPLICE_F_NONBLOCK, no offsets.
ssize_t sg_splice(int from, int to, size_t length);
/// pipe2(2) with O_NONBLOCK | O_CLOEXEC, then F_SETPIPE_SZ to `size` (best effort).
int sg_pipe(int fds[2], int size);
/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC.
int sg_accept(int listener);
/// The destination a connection accepted from `fd` was opened to before an nf_tables redirect sent
/// it here (SO_ORIGINAL_DST, or IP6T_SO_ORIGINAL_DST for IPv6), as a `sockaddr_in` or
/// `sockaddr_in6` in `original`. Returns 0, or an errno (ENOENT: the connection was not
/// redirected: it was opened to the listener itself).
int sg_original_destination(int fd, struct sockaddr_storage *original);
/// memmem(3).
const void *sg_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length);
#endif
