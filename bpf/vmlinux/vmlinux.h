/* Selects the vendored, architecture-specific vmlinux.h (see Makefile: VMLINUX_H). */
#if defined(__TARGET_ARCH_x86)
#include "vmlinux_x86.h"
#elif defined(__TARGET_ARCH_arm64)
#include "vmlinux_arm64.h"
#else
#error "dpndncy: no vendored vmlinux.h for this architecture (run make vmlinux ARCH=...)"
#endif
