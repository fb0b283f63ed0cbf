/* The OS/CPU differences (platform.h): Linux, macOS, and portable fallbacks; exiting with the parent. */
#if defined(__linux__)
#define _GNU_SOURCE
#endif
#include "platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#if defined(__APPLE__)
#include <fcntl.h>
#include <mach/mach.h>
#include <pthread.h>
#include <sys/sysctl.h>
#endif
#if defined(__linux__) && defined(__aarch64__)
#include <sys/auxv.h>
#endif

/* ===== CPU features ===== */

#if defined(__APPLE__)
static int sysctl_int(const char * name, int fallback) {
    int v = 0;
    size_t len = sizeof v;
    if (sysctlbyname(name, &v, &len, NULL, 0) != 0 || len != sizeof v) return fallback;
    return v;
}
#endif

static int detect_features(void) {
    int f = 0;
#if defined(__aarch64__) && defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & (1ul << 20)) f |= FC_CPU_FEAT_DOTPROD; /* HWCAP_ASIMDDP */
    if (hw2 & (1ul << 13)) f |= FC_CPU_FEAT_I8MM;   /* HWCAP2_I8MM */
#elif defined(__aarch64__) && defined(__APPLE__)
    if (sysctl_int("hw.optional.arm.FEAT_DotProd", 0) > 0) f |= FC_CPU_FEAT_DOTPROD;
    if (sysctl_int("hw.optional.arm.FEAT_I8MM", 0) > 0) f |= FC_CPU_FEAT_I8MM;
#endif
    const char * off = getenv("FLASHCHAT_CPU_FEATURES_OFF");
    if (off) {
        if (strstr(off, "dotprod")) f &= ~(FC_CPU_FEAT_DOTPROD | FC_CPU_FEAT_I8MM);
        if (strstr(off, "i8mm")) f &= ~FC_CPU_FEAT_I8MM;
    }
    return f;
}

int fc_platform_cpu_features(void) {
    static int cached = -1;
    if (cached < 0) cached = detect_features(); /* idempotent: a race only computes it twice */
    return cached;
}

/* ===== memory ===== */

uint64_t fc_platform_available_memory(void) {
#if defined(__linux__)
    FILE * f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
        }
        fclose(f);
        if (kb) return (uint64_t)kb * 1024;
    }
#elif defined(__APPLE__)
    vm_statistics64_data_t vm;
    mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
    if (host_statistics64(mach_host_self(), HOST_VM_INFO64, (host_info64_t)&vm, &count) == KERN_SUCCESS) {
        return ((uint64_t)vm.free_count + vm.inactive_count + vm.purgeable_count) * (uint64_t)vm_kernel_page_size;
    }
#endif
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    /* no better figure: count half of the physical memory as available */
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2 : 0;
}

uint64_t fc_platform_rss_bytes(void) {
#if defined(__linux__)
    FILE * f = fopen("/proc/self/statm", "r");
    long pages_total = 0, pages_rss = 0;
    if (!f) return 0;
    int ok = fscanf(f, "%ld %ld", &pages_total, &pages_rss) == 2;
    fclose(f);
    return ok ? (uint64_t)pages_rss * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
#elif defined(__APPLE__)
    mach_task_basic_info_data_t info;
    mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
    if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t)&info, &count) != KERN_SUCCESS) return 0;
    return (uint64_t)info.resident_size;
#else
    return 0;
#endif
}

uint64_t fc_platform_max_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) return 0;
#if defined(__APPLE__)
    return (uint64_t)ru.ru_maxrss; /* bytes on macOS */
#else
    return (uint64_t)ru.ru_maxrss * 1024; /* kilobytes on Linux and the BSDs */
#endif
}

/* ===== threads ===== */

int32_t fc_platform_compute_threads(void) {
#if defined(__APPLE__)
    int p = sysctl_int("hw.perflevel0.physicalcpu", 0);
    if (p <= 0) p = sysctl_int("hw.physicalcpu", 0);
    if (p > 0) return p;
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

void fc_platform_compute_thread_start(void) {
#if defined(__APPLE__)
    pthread_set_qos_class_self_np(QOS_CLASS_USER_INTERACTIVE, 0);
#endif
}

/* ===== files ===== */

void fc_platform_expert_file(int fd) {
#if defined(__APPLE__)
    fcntl(fd, F_RDAHEAD, 0);
#else
    (void)fd;
#endif
}

/* ===== process lifetime: exit with the parent ===== */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#if defined(__linux__)
#include <sys/prctl.h>
#elif defined(__APPLE__)
#include <sys/event.h>
#endif

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
