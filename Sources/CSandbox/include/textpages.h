#ifndef CSANDBOX_TEXTPAGES_H
#define CSANDBOX_TEXTPAGES_H
#include <stddef.h>

/// Where the running program's code is: its executable PT_LOAD segment, page-aligned. Returns 0 and
/// fills `start` and `length`, or -1 when the program headers name no executable segment.
int sg_text_range(void **start, size_t *length);

/// Collapses the running program's code into 2 MiB page-cache folios (madvise MADV_COLLAPSE, Linux
/// 6.1+, on kernels built with CONFIG_READ_ONLY_THP_FOR_FS): later runs then map it in 2 MiB pages.
/// Synchronous: milliseconds the first time, microseconds once collapsed. Returns 0 or errno (EINVAL
/// where the kernel cannot).
int sg_text_collapse_huge_pages(void);

#endif
