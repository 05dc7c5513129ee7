// A file-heavy step: opens, reads and closes every file under DIR, PASSES times (200,000 opens
// for 10,000 files and 20 passes), and prints how long that took in milliseconds.
// Usage: opens DIR FILES PASSES   (the files are DIR/f0 ... DIR/f<FILES-1>)
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: opens DIR FILES PASSES\n"); return 64; }
    int files = atoi(argv[2]), passes = atoi(argv[3]);
    char path[4096], buffer[256];
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int pass = 0; pass < passes; pass++) {
        for (int i = 0; i < files; i++) {
            snprintf(path, sizeof path, "%s/f%d", argv[1], i);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) { perror(path); return 1; }
            if (read(fd, buffer, sizeof buffer) < 0) { perror(path); return 1; }
            close(fd);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.3f\n", (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6);
    return 0;
}
