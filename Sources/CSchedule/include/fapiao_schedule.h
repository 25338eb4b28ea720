#ifndef FAPIAO_SCHEDULE_H
#define FAPIAO_SCHEDULE_H
/// The CPU the calling thread runs on (-1 when unknown).
int fapiao_current_cpu(void);
/// Lets the calling thread run on the CPUs it was first allowed but `cpu` (on all of them when
/// `cpu` is the only one, or not among them); 0 on success.
int fapiao_avoid_cpu(int cpu);
#endif
