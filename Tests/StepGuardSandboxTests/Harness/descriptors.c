// Runs csandbox.c's close-on-exec fallbacks (for kernels without CLOSE_RANGE_CLOEXEC) in a process
// of its own: DescriptorFallbackTests compiles it with the C compiler next to swift and checks
// its output. Prints "ok" and timings, or the first check that failed, and exits non-zero then.
#include "csandbox.c"
#include <stdio.h>
#include <time.h>

static int failures = 0;
#define CHECK(condition, what) do { if (!(condition)) { printf("FAILED: %s\n", what); failures++; } } while (0)

static int has_cloexec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

static void clear_cloexec(const int *fds, int count) {
    for (int i = 0; i < count; i++) fcntl(fds[i], F_SETFD, 0);
}

static double milliseconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1e3 + (now.tv_nsec - start->tv_nsec) / 1e6;
}

int main(void) {
    enum { COUNT = 6 };
    int fds[COUNT];
    for (int i = 0; i < COUNT; i++) fds[i] = open("/dev/null", O_RDONLY);  // ascending, no close-on-exec
    // A descriptor far above the others, as a parent may leave one (below the hard limit).
    struct rlimit saved, lowered;
    getrlimit(RLIMIT_NOFILE, &saved);
    saved.rlim_cur = saved.rlim_max;  // anyone may raise the soft limit to the hard one
    setrlimit(RLIMIT_NOFILE, &saved);
    unsigned far = saved.rlim_max > 4001 ? 4000 : (unsigned)saved.rlim_max - 1;
    int high = fcntl(fds[0], F_DUPFD, (int)far);
    CHECK(high >= (int)far && far > 64, "a descriptor far above the others");

    // Listed from /proc/self/fd: exactly the range, the open descriptors in it, the far one too.
    CHECK(close_on_exec_listed((unsigned)fds[1], (unsigned)fds[3]) == 0, "listed: returns 0");
    CHECK(!has_cloexec(fds[0]) && has_cloexec(fds[1]) && has_cloexec(fds[2]) && has_cloexec(fds[3]) && !has_cloexec(fds[4]),
          "listed: marks first...last only");
    clear_cloexec(fds, COUNT);
    CHECK(close_on_exec_listed((unsigned)fds[4], ~0U) == 0 && has_cloexec(fds[4]) && has_cloexec(fds[5]) && has_cloexec(high),
          "listed: up to ~0 reaches every open descriptor");
    CHECK(!has_cloexec(fds[3]), "listed: below first is left alone");
    fcntl(high, F_SETFD, 0);
    clear_cloexec(fds, COUNT);

    // Counted up to the soft limit: the same, for what lies below the limit.
    CHECK(close_on_exec_counted((unsigned)fds[1], (unsigned)fds[3]) == 0, "counted: returns 0");
    CHECK(!has_cloexec(fds[0]) && has_cloexec(fds[1]) && has_cloexec(fds[3]) && !has_cloexec(fds[4]), "counted: marks first...last only");
    clear_cloexec(fds, COUNT);

    // What the listing fixes: a descriptor above a lowered soft limit is out of the counted loop's reach.
    lowered = saved;
    lowered.rlim_cur = far / 2;
    CHECK(setrlimit(RLIMIT_NOFILE, &lowered) == 0, "lower the soft limit");
    CHECK(close_on_exec_counted((unsigned)fds[0], ~0U) == 0 && !has_cloexec(high), "counted: stops at the soft limit");
    CHECK(close_on_exec_listed((unsigned)fds[0], ~0U) == 0 && has_cloexec(high), "listed: ignores the soft limit");
    setrlimit(RLIMIT_NOFILE, &saved);
    fcntl(high, F_SETFD, 0);
    clear_cloexec(fds, COUNT);

    // Cost with a limit of 1,048,576 (common in containers; raising the hard limit needs root),
    // else with the hard limit there is.
    lowered.rlim_cur = lowered.rlim_max = 1U << 20;
    if (setrlimit(RLIMIT_NOFILE, &lowered) != 0) {
        lowered = saved;
        lowered.rlim_cur = saved.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lowered);
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    close_on_exec_listed(3, ~0U);
    double listed = milliseconds_since(&start);
    clear_cloexec(fds, COUNT);
    clock_gettime(CLOCK_MONOTONIC, &start);
    close_on_exec_counted(3, ~0U);
    double counted = milliseconds_since(&start);
    setrlimit(RLIMIT_NOFILE, &saved);

    if (failures) return 1;
    printf("ok listed %.3f ms, counted to %lu: %.1f ms\n", listed, (unsigned long)lowered.rlim_cur, counted);
    return 0;
}
