/* sched/fault.h -- catching stack overflows at the guard page (fault.c).
 * Private to sched/; runtime/ sees only the hooks and arbor__crit_*() in
 * sched/sched.h. */
#ifndef ARBOR_SCHED_FAULT_H
#define ARBOR_SCHED_FAULT_H

/* Install the SIGSEGV and SIGBUS handler, or count one more user of it.
 * Called by arbor__sched_start() before any worker starts. */
void arbor__fault_install(void);
/* Count one user less; the last one puts back the actions found by the
 * first install (unless someone replaced ours meanwhile).  Called by
 * arbor__sched_stop() once every worker has been joined. */
void arbor__fault_uninstall(void);

/* Give the calling worker thread its own alternate signal stack (keeping
 * the one it had, if any), so that the handler can run when the thread's
 * current stack is the one that overflowed.  If it cannot be mapped, the
 * thread goes without: an overflow then kills the program with SIGSEGV. */
void arbor__fault_thread_start(void);
/* Put the thread's previous alternate stack back and unmap ours.  Must not
 * run on the alternate stack. */
void arbor__fault_thread_stop(void);

#endif /* ARBOR_SCHED_FAULT_H */
