#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include "fapiao_schedule.h"

int fapiao_current_cpu(void) { return sched_getcpu(); }

int fapiao_avoid_cpu(int cpu) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 2 || cpu < 0) return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < online && c < CPU_SETSIZE; c++) {
        if (c != cpu) CPU_SET(c, &set);
    }
    return sched_setaffinity(0, sizeof(set), &set);
}
