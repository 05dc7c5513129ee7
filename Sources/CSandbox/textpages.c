// The running program's code in 2 MiB pages (issue #17). stepguard's code is a 36 MB executable
// segment of which a run touches about 11 MB: mapped in 4 KiB pages, that is thousands of page faults
// (in 64 KiB fault-around batches) and iTLB misses per run, about 0.7 ms (bench/README.md). Linked with
// 2 MiB segment alignment (Package.swift: `-z max-page-size=0x200000`), the segment's file offsets and
// addresses agree modulo 2 MiB, so the kernel maps a 2 MiB page-cache folio of it with one PMD entry.
// How the page cache gets such folios depends on the kernel: where the file system caches large
// folios (ext4 since Linux 6.16, XFS, tmpfs), writing the binary in 2 MiB blocks does it (the
// installers do, actions/setup and the GitLab component); kernels built with
// CONFIG_READ_ONLY_THP_FOR_FS (and no large folios for the file system) collapse it on request,
// below. Either changes only how the code is mapped, never what it does.
#define _GNU_SOURCE
#include "textpages.h"
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

typedef struct {
    uintptr_t start;
    uintptr_t end;
} text_range;

/// dl_iterate_phdr visits the main program first: its executable PT_LOAD, then stop.
static int find_text(struct dl_phdr_info *info, size_t size, void *raw) {
    (void)size;
    text_range *range = raw;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        if (header->p_type == PT_LOAD && (header->p_flags & PF_X)) {
            range->start = info->dlpi_addr + header->p_vaddr;
            range->end = range->start + header->p_memsz;
            break;
        }
    }
    return 1;
}

int sg_text_range(void **start, size_t *length) {
    text_range range = { 0, 0 };
    dl_iterate_phdr(find_text, &range);
    if (range.end <= range.start) return -1;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = range.start & ~(page - 1);
    uintptr_t last = (range.end + page - 1) & ~(page - 1);
    *start = (void *)first;
    *length = last - first;
    return 0;
}

int sg_text_collapse_huge_pages(void) {
    void *start;
    size_t length;
    if (sg_text_range(&start, &length) != 0) return ENOENT;
    return madvise(start, length, MADV_COLLAPSE) == 0 ? 0 : errno;
}
