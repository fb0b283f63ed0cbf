/* What differs between operating systems, in one place: compute-thread start-up and exiting with the parent. */
#define _GNU_SOURCE
#include "platform.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/prctl.h>
#elif defined(__APPLE__)
#include <sys/event.h>
#endif

void fc_platform_worker_start(int32_t ith) {
    (void)ith; /* macOS thread QoS / performance-core placement goes here */
}

/* The parent is gone: exit without running atexit handlers or flushing (another thread may hold stdio locks). */
static void parent_gone(void) {
    _exit(1);
}

static void * watch_parent(void * arg) {
    const pid_t parent = (pid_t)(intptr_t)arg;
#if defined(__APPLE__)
    int kq = kqueue();
    if (kq >= 0) {
        struct kevent ev;
        EV_SET(&ev, parent, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, NULL);
        if (kevent(kq, &ev, 1, NULL, 0, NULL) == 0) {
            /* registered: the parent was alive then; it may have ended just before (re-check), else wait */
            struct kevent out;
            while (getppid() == parent) {
                int n = kevent(kq, NULL, 0, &out, 1, NULL);
                if (n > 0 || (n < 0 && errno != EINTR)) break;
            }
            if (getppid() != parent) parent_gone();
        }
        close(kq);
    }
#endif
    const struct timespec half_second = { 0, 500 * 1000 * 1000 };
    for (;;) {
        if (getppid() != parent) parent_gone();
        nanosleep(&half_second, NULL);
    }
    return NULL;
}

void fc_platform_exit_with_parent(pid_t parent) {
#if defined(__linux__)
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0) {
        if (getppid() != parent) parent_gone(); /* it ended before the signal was armed */
        return;
    }
#endif
    if (getppid() != parent) parent_gone();
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, watch_parent, (void *)(intptr_t)parent) != 0) { /* cannot watch: keep running */ }
    pthread_attr_destroy(&attr);
}
