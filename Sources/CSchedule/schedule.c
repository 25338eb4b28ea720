#define _GNU_SOURCE
#include <sched.h>
#include "fapiao_schedule.h"

int fapiao_current_cpu(void) { return sched_getcpu(); }

/* The CPUs the calling thread was allowed when it first asked (taskset, cpusets): every later
   mask is taken from it, so repeated calls never narrow it further, nor widen it. */
static __thread cpu_set_t allowed;
static __thread int allowedKnown = 0;

int fapiao_avoid_cpu(int cpu) {
    if (!allowedKnown) {
        CPU_ZERO(&allowed);
        if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return -1;
        allowedKnown = 1;
    }
    cpu_set_t set = allowed;
    if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set) && CPU_COUNT(&set) >= 2) CPU_CLR(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}
