#ifndef CSANDBOX_CAPTURE_H
#define CSANDBOX_CAPTURE_H
#include "csandbox.h"

/// Makes every address local to the current network namespace and redirects every new TCP
/// connection to a non-loopback address to `port` on loopback (see capture.c). Returns where it
/// failed (SG_CAPTURE_NONE: it did not) with the errno in `error`.
sg_capture_stage sg_capture_setup(uint16_t port, int *error);

/// Makes the sockets stepguard serves the captured namespace with (each -1 when it could not be
/// made; the IPv6 ones are optional): see SG_CAPTURE_LISTENER4 and the others. Returns 0 or the errno of
/// the first required socket that failed.
int sg_capture_sockets(int fds[SG_CAPTURE_SOCKETS]);
#endif
