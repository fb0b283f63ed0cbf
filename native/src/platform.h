/* What differs between operating systems, in one place: compute-thread start-up and exiting with the parent. */
#ifndef FC_PLATFORM_H
#define FC_PLATFORM_H

#include <stdint.h>
#include <sys/types.h>

/*
 * Called once by each compute-pool worker thread as it starts (ith >= 1; the caller's thread is 0 and does not
 * call it). The hook for per-platform thread set-up (e.g. a QoS class or core placement); nothing yet.
 */
void fc_platform_worker_start(int32_t ith);

/*
 * End this process when its parent does, whatever its other threads are doing (spinning compute threads too).
 * `parent` is getppid() taken as early as possible in main(): if the parent is already gone, exit at once.
 * Linux: PR_SET_PDEATHSIG with SIGKILL (note: it fires when the *thread* that started us ends). Elsewhere (and
 * if prctl fails): a watcher thread (kqueue NOTE_EXIT on macOS, else getppid() polled every 500 ms).
 */
void fc_platform_exit_with_parent(pid_t parent);

#endif
