// A step that renames and removes many files (what an archive extraction or a build cache does):
// creates FILES files in DIR, renames each, links each to a second name, removes both names, and
// prints how long the renames, links and removals (3 × FILES calls sent to stepguard's names
// filter when tripwires are on) took in milliseconds. The creations are not in the figure.
// With `make`: instead times FILES mkdir, FILES mkfifo (mknod) and FILES symlink calls (3 × FILES
// calls sent to the filter); the removals after them are not in the figure.
// Usage: names DIR FILES [make]
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "make") == 0)) { fprintf(stderr, "usage: names DIR FILES [make]\n"); return 64; }
    int files = atoi(argv[2]);
    char path[4096], renamed[4096], linked[4096];
    struct timespec start, end;
    if (argc == 4) {
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int i = 0; i < files; i++) {
            snprintf(path, sizeof path, "%s/d%d", argv[1], i);
            snprintf(renamed, sizeof renamed, "%s/p%d", argv[1], i);
            snprintf(linked, sizeof linked, "%s/s%d", argv[1], i);
            if (mkdir(path, 0700) != 0 || mkfifo(renamed, 0600) != 0 || symlink(path, linked) != 0) { perror(path); return 1; }
        }
        clock_gettime(CLOCK_MONOTONIC, &end);
        for (int i = 0; i < files; i++) {
            snprintf(path, sizeof path, "%s/d%d", argv[1], i);
            snprintf(renamed, sizeof renamed, "%s/p%d", argv[1], i);
            snprintf(linked, sizeof linked, "%s/s%d", argv[1], i);
            rmdir(path);
            unlink(renamed);
            unlink(linked);
        }
        printf("%.3f\n", (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6);
        return 0;
    }
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/n%d", argv[1], i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) { perror(path); return 1; }
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/n%d", argv[1], i);
        snprintf(renamed, sizeof renamed, "%s/r%d", argv[1], i);
        snprintf(linked, sizeof linked, "%s/l%d", argv[1], i);
        if (rename(path, renamed) != 0 || link(renamed, linked) != 0 || unlink(renamed) != 0) { perror(path); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    for (int i = 0; i < files; i++) {
        snprintf(linked, sizeof linked, "%s/l%d", argv[1], i);
        unlink(linked);
    }
    printf("%.3f\n", (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6);
    return 0;
}
