/*
 * The operating-system and CPU differences the engine cares about, in one place (Linux and macOS; other
 * POSIX systems get the portable fallbacks). Nothing else in the engine tests __APPLE__ / __linux__ for
 * these. See native/PLATFORM.md.
 */
#ifndef FC_PLATFORM_H
#define FC_PLATFORM_H

#include <stdint.h>
#include <sys/types.h>

/* CPU features the kernels select on at run time (aarch64; 0 elsewhere). */
enum {
    FC_CPU_FEAT_DOTPROD = 1 << 0, /* SDOT/UDOT (FEAT_DotProd) */
    FC_CPU_FEAT_I8MM = 1 << 1,    /* SMMLA/USDOT (FEAT_I8MM) */
};
/* Bit set of FC_CPU_FEAT_*; the environment variable FLASHCHAT_CPU_FEATURES_OFF=dotprod,i8mm hides some
   (to run a lower level by default on a CPU that has a higher one). */
int fc_platform_cpu_features(void);

/* Memory the OS could give us now without swapping, in bytes (0 if unknown). Linux: MemAvailable;
   macOS: free + inactive + purgeable pages (host_statistics64); elsewhere half of physical memory. */
uint64_t fc_platform_available_memory(void);
/* Resident set size of this process now, and its peak, in bytes (0 if unknown). */
uint64_t fc_platform_rss_bytes(void);
uint64_t fc_platform_max_rss_bytes(void);

/* Default compute thread count: performance cores on macOS (hw.perflevel0.physicalcpu; efficiency cores
   are stragglers in a fork-join pool), online CPUs elsewhere. At least 1. */
int32_t fc_platform_compute_threads(void);
/* Called by every compute thread (and the pool's creator) once before it computes: macOS runs it at
   user-interactive QoS, so the scheduler keeps it on performance cores. No-op elsewhere. */
void fc_platform_compute_thread_start(void);

/*
 * An expert layer file was opened for random reads of whole experts: macOS turns its read-ahead off
 * (F_RDAHEAD 0: read-ahead past an expert reads bytes of the neighbour nobody asked for). The page cache
 * stays on (no F_NOCACHE): cached experts are the main win on a Mac with memory to spare, and the Linux
 * path keeps them cached too. No-op elsewhere (Linux readahead adapts to random pread by itself).
 */
void fc_platform_expert_file(int fd);

/*
 * End this process when its parent does, whatever its other threads are doing (spinning compute threads too).
 * `parent` is getppid() taken as early as possible in main(): if the parent is already gone, exit at once.
 * Linux: PR_SET_PDEATHSIG with SIGKILL (note: it fires when the *thread* that started us ends). Elsewhere (and
 * if prctl fails): a watcher thread (kqueue NOTE_EXIT on macOS, else getppid() polled every 500 ms).
 */
void fc_platform_exit_with_parent(pid_t parent);

#endif
