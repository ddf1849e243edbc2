/* dpndncy agent: the program-wide constants (each unit declares its own exports in its header). */
#ifndef DPNDNCY_AGENT_H
#define DPNDNCY_AGENT_H

#ifndef DPNDNCY_VERSION
#define DPNDNCY_VERSION "0.0.0"
#endif
#ifndef DPNDNCY_COMMIT
#define DPNDNCY_COMMIT "unknown"
#endif

#define PROG "dpndncy-agent"

/* The multiarch directory and musl loader name of this build's architecture: where the
 * getaddrinfo uprobe looks for libc when ld.so.cache does not name one. */
#if defined(__aarch64__)
#define LIBC_MULTIARCH "aarch64-linux-gnu"
#define MUSL_LOADER "ld-musl-aarch64.so.1"
#elif defined(__x86_64__)
#define LIBC_MULTIARCH "x86_64-linux-gnu"
#define MUSL_LOADER "ld-musl-x86_64.so.1"
#else
#error "dpndncy-agent: builds for x86_64 and aarch64 only"
#endif
#define DEFAULT_STATE_DIR "/run/dpndncy"
#define PIN_DIR "/sys/fs/bpf/dpndncy"

/* exit codes */
#define EX_FAIL 1        /* error: nothing attached */
#define EX_USAGE 2       /* bad command line */
#define EX_INCOMPLETE 3  /* stop: agent had died, trace recovered but incomplete */

#endif
