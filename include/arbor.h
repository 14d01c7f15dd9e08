/* arbor.h -- the only header users include.
 *
 * Arbor runs lightweight stackful processes on a pool of worker threads.
 * Every process has its own stack, a pid that is never reused during the
 * life of its runtime, and a dotted name.  See README.md for the design and
 * the ownership rules; every function below documents its error codes.
 */
#ifndef ARBOR_H
#define ARBOR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "arbor/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ARBOR_API __attribute__((visibility("default")))
#define ARBOR_NODISCARD __attribute__((warn_unused_result))
#else
#define ARBOR_API
#define ARBOR_NODISCARD
#endif

/* ------------------------------------------------------------------------
 * Errors
 *
 * Every fallible function returns 0 (or a count >= 0) on success and one of
 * these negative codes on failure.  A failed call has no effect, and its
 * out-parameters are left untouched.
 * ------------------------------------------------------------------------ */

#define ARBOR_ERRNO_MAP(XX)                                                    \
  XX(EINVAL, -EINVAL, "invalid argument")                                      \
  XX(ENOMEM, -ENOMEM, "out of memory")                                         \
  XX(EAGAIN, -EAGAIN, "resource temporarily unavailable, try again")           \
  XX(ESRCH, -ESRCH, "no such process")                                         \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                       \
  XX(ECANCELED, -ECANCELED, "process is being shut down")                      \
  XX(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                             \
  XX(EDEADLK, -EDEADLK, "call would block a worker thread")                    \
  XX(ENOTPROC, -4001, "must be called from inside a process")                  \
  XX(ESHUTDOWN, -4002, "runtime is shutting down")                             \
  XX(EEXIST, -EEXIST, "name already registered")                             \
  XX(EOTHERRT, -4003, "process belongs to another runtime")                   \
  XX(ENOENT, -ENOENT, "no such child")                                         \
  XX(EBUSY, -EBUSY, "child is running")                                        \
  XX(EBADSPEC, -4004, "invalid supervisor or child spec")                      \
  XX(ESTART, -4005, "a child failed to start")                                \
  XX(ESTACKOVERFLOW, -4006, "stack overflow")

/** Error codes.  POSIX-meaning codes are -errno; the rest sit below -4000. */
enum arbor_errno {
#define ARBOR__XX(name, value, msg) ARBOR_##name = (value),
  ARBOR_ERRNO_MAP(ARBOR__XX)
#undef ARBOR__XX
};

/** A sentence describing @p err ("unknown error" for codes not in the table).
 *
 * @return A static string; never NULL.
 * @par Thread safety
 * Any thread.
 */
ARBOR_API const char *arbor_strerror(int err);

/** The symbolic name of @p err, such as "ARBOR_ESRCH" ("ARBOR_UNKNOWN" for
 * codes not in the table, "ARBOR_OK" for 0).
 *
 * @return A static string; never NULL.
 * @par Thread safety
 * Any thread.
 */
ARBOR_API const char *arbor_err_name(int err);

/* ------------------------------------------------------------------------
 * Exit reasons
 *
 * A process function returns its exit reason: 0 is a normal exit, positive
 * values are the application's own, and the runtime uses the negative
 * values below (and, where a call failed, an ARBOR_E* code).
 * ------------------------------------------------------------------------ */

#define ARBOR_NORMAL 0
/** An orderly stop: arbor_rt_shutdown() ends processes with it, and a
 * supervisor stops children with it.  Not a failure. */
#define ARBOR_REASON_SHUTDOWN (-5001)
/** The reason a process killed with ARBOR_REASON_KILL exits with, and that
 * its links and monitors see (it can be trapped by them). */
#define ARBOR_REASON_KILLED (-5002)
/** Passed to arbor_kill(): ends the target even if it traps exits. */
#define ARBOR_REASON_KILL (-5003)
/** A DOWN for a monitor of a process that did not exist. */
#define ARBOR_REASON_NOPROC (-5004)

/* A process that runs off its stack ends with ARBOR_ESTACKOVERFLOW (see
 * enum arbor_overflow_action). */

/** A readable name for a reason: "normal", "shutdown", "killed", "kill",
 * "noproc", "stack_overflow", an error code's name, or "user" for the
 * application's own.  Never NULL. */
ARBOR_API const char *arbor_reason_name(int reason);

/* ------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------ */

/** A runtime: a pool of workers and the processes they run.  Opaque. */
typedef struct arbor_rt arbor_rt;

/** A process identifier.  0 is never a valid pid.  A pid is never reused
 * during the life of its runtime, and it does not resolve in any other
 * runtime alive at the same time.  Pids name their runtime with 8 bits: once
 * a runtime is destroyed, its pids fail cleanly (ARBOR_ESRCH, or
 * ARBOR_EOTHERRT where a runtime is given) until 255 more runtimes have
 * been created, after which one of those may reuse its pids. */
typedef uint64_t arbor_pid;

/** A process body.  Its return value is the process's exit reason. */
typedef int (*arbor_fn)(void *arg);

/** How process stacks are mapped. */
enum arbor_stack_mode {
  /** Guarded stacks while the kernel's mapping budget allows, then slab
   * stacks (the default; see README "Stacks"). */
  ARBOR_STACK_AUTO = 0,
  /** Every stack has its own mapping and a PROT_NONE guard page.  Once the
   * process-wide budget of guarded stacks is used up (derived from
   * vm.max_map_count, leaving room for the rest of the program: about
   * 28,000 stacks by default), further processes end at their first run
   * with reason ARBOR_ENOMEM. */
  ARBOR_STACK_GUARDED = 1,
  /** Stacks are carved from large shared mappings with no guard page; an
   * overflow is detected after the fact by a canary check at each switch. */
  ARBOR_STACK_SLAB = 2,
};

/** Runtime options.  Zero-initialise; every zero field means "default".
 * New fields are only ever appended. */
typedef struct arbor_rt_opts {
  /** Worker threads; 0 = the number of online CPUs. At most 256. */
  unsigned workers;
  /** Default process stack size in bytes; 0 = 64 KiB.  Rounded up to whole
   * pages; at least 16 KiB, at most 1 GiB. */
  size_t stack_size;
  /** An enum arbor_stack_mode; 0 = ARBOR_STACK_AUTO. */
  int stack_mode;
  /** Stacks kept for reuse by each worker; 0 = 256. */
  unsigned stack_cache;
  /** Seed of the work-stealing victim choice; 0 = taken from the clock.
   * With workers = 1 and a fixed seed, scheduling is deterministic. */
  uint64_t seed;
  /** What a stack overflow caught by a guard page does: an enum
   * arbor_overflow_action; 0 = ARBOR_OVERFLOW_EXIT.  A slab stack (no guard
   * page) always aborts (see README "Faults and limits"). */
  int on_stack_overflow;
  /** Stuck-process watchdog threshold in milliseconds; 0 = 100 ms, negative
   * = no watchdog.  At most 86,400,000 (a day).  A process that runs this
   * long without switching (one that keeps sending, receiving or spawning
   * switches at least once every 128 such calls, so in practice: without
   * runtime calls) is reported once per episode as an ARBOR_EV_PROC_STUCK
   * event, from the runtime's watchdog thread, and the processes queued
   * behind it on its worker are handed to other workers.  Wall-clock time:
   * a process blocked in a system call, or a worker thread the kernel does
   * not run, counts as stuck too.  See README "Faults and limits". */
  int64_t watchdog_ms;
} arbor_rt_opts;

/** What happens when a process runs off its stack into its guard page. */
enum arbor_overflow_action {
  /** The process ends at once with reason ARBOR_ESTACKOVERFLOW: its defers
   * do not run, its stack is unmapped, its links and monitors are notified,
   * its supervisor may restart it, and its worker goes on with other
   * processes.  (The program aborts instead, as with ARBOR_OVERFLOW_ABORT,
   * when the overflow cannot be recovered from: inside one of the runtime's
   * critical sections, inside the C library, which may hold a lock of its
   * own, or in a supervisor process; see README "Faults and limits".) */
  ARBOR_OVERFLOW_EXIT = 0,
  /** Print the process's pid, name and stack size on stderr, then abort(). */
  ARBOR_OVERFLOW_ABORT = 1,
};

/** Per-spawn options.  Zero-initialise; zero fields mean "default". */
typedef struct arbor_spawn_opts {
  /** A name segment, appended to the parent's dotted path ("root.sup" +
   * "worker" = "root.sup.worker").  NULL: the child takes its parent's path
   * unchanged.  Characters other than [A-Za-z0-9_] become '_', runs of '_'
   * collapse, and leading or trailing '_' are dropped. */
  const char *name;
  /** Stack size for this process; 0 = the runtime's default. */
  size_t stack_size;
  /** ARBOR_SPAWN_* flags, or 0. */
  unsigned flags;
  /** With ARBOR_SPAWN_MONITOR: receives the monitor's reference. */
  uint64_t *monitor_ref;
} arbor_spawn_opts;

/** Spawn flag: the process stays a zombie after it exits, holding its exit
 * reason, until one arbor_wait() collects it (as pthread_join does).  Its
 * stack is freed at exit; only a small record remains.  Without this flag a
 * process is reaped as soon as it exits, and arbor_wait() must start before
 * the exit to see it. */
#define ARBOR_SPAWN_JOINABLE 1u
/** Spawn flag: link the caller (a process) and the child before the child
 * can run, so the child cannot die unobserved.  Outside a process, or from
 * a process of another runtime: ARBOR_ENOTPROC. */
#define ARBOR_SPAWN_LINK 2u
/** Spawn flag: the caller (a process) monitors the child from before it can
 * run; the reference goes to *monitor_ref (required).  Outside a process,
 * or from a process of another runtime: ARBOR_ENOTPROC. */
#define ARBOR_SPAWN_MONITOR 4u

/** Counters of one worker, for tests, benchmarks and monitoring.  Every
 * count is since the runtime was created. */
typedef struct arbor_worker_stats {
  uint64_t runs;    /**< times a process was switched to */
  uint64_t spawns;  /**< processes spawned by processes on this worker */
  uint64_t steals;  /**< processes taken from other workers */
  uint64_t injects; /**< processes taken from the global injection queue */
  uint64_t parks;   /**< times the worker thread went to sleep */
  uint64_t lifo;    /**< runs taken from the LIFO slot */
  uint64_t timers;  /**< timers that fired on this worker */
} arbor_worker_stats;

/** Longest name a process can have, including the terminating NUL. */
#define ARBOR_NAME_MAX 256

/* ------------------------------------------------------------------------
 * Runtime life cycle
 * ------------------------------------------------------------------------ */

/** Create a runtime and start its workers.
 *
 * @param[out] rt    The new runtime.
 * @param      opts  Options, or NULL for all defaults.  Copied.
 * @return 0, ARBOR_EINVAL (rt is NULL or an option is out of range),
 *         ARBOR_ENOMEM, or ARBOR_EAGAIN (a worker thread or the watchdog
 *         thread could not start).
 * @par Ownership
 * The caller owns *rt and must arbor_rt_destroy() it.
 * @par Signals
 * While any runtime exists, the library handles SIGSEGV and SIGBUS (with
 * SA_ONSTACK, on an alternate signal stack it gives each worker thread) to
 * catch stack overflows; every other fault goes on to the action that was
 * installed before the first runtime was created (a handler is called, the
 * default action kills the program).  That action is restored when the last
 * runtime is shut down (or destroyed), unless it was replaced meanwhile.
 * @par Thread safety
 * Any thread.
 */
ARBOR_API ARBOR_NODISCARD int arbor_rt_create(arbor_rt **rt,
                                              const arbor_rt_opts *opts);

/** End every process, stop the workers and free every stack.
 *
 * New spawns fail with ARBOR_ESHUTDOWN from the start of the call.  Every
 * live process is ended with reason ARBOR_REASON_SHUTDOWN: one that has not
 * started yet is discarded without running; one that is suspended is resumed
 * and ends inside the runtime call it is suspended in, running its defers;
 * one that is running ends at its next runtime call.  A process that never
 * makes a runtime call again keeps shutdown waiting (see README "Faults").
 * Calling it again is harmless.
 *
 * @return 0, ARBOR_EINVAL (rt is NULL) or ARBOR_EDEADLK (called from one of
 *         rt's own processes, which would wait for itself).
 * @par Thread safety
 * Any thread that is not a worker of @p rt.
 */
ARBOR_API int arbor_rt_shutdown(arbor_rt *rt);

/** Shut @p rt down if that has not been done, then free it.  NULL is a
 * no-op.  From one of rt's own processes this does nothing (the runtime
 * cannot destroy itself from inside).
 *
 * Afterwards @p rt is a dangling pointer: no call can tell it from a live
 * runtime, so passing it to any function is undefined (as using memory
 * after free() is).  What stays safe is every value the runtime handed
 * out: calls that take a pid, a timer or a supervisor (and no runtime)
 * fail for them with ARBOR_ESRCH, and calls given another runtime answer
 * ARBOR_EOTHERRT (see arbor_pid for how long that holds).
 *
 * @par Thread safety
 * Any thread that is not a worker of @p rt; no other call on @p rt may run
 * at the same time or later.
 */
ARBOR_API void arbor_rt_destroy(arbor_rt *rt);

/** The number of worker threads of @p rt, or ARBOR_EINVAL if rt is NULL. */
ARBOR_API int arbor_rt_workers(const arbor_rt *rt);

/** The number of live processes of @p rt (a snapshot), or ARBOR_EINVAL. */
ARBOR_API int64_t arbor_rt_live(const arbor_rt *rt);

/** Copy the counters of up to @p n workers into @p out.
 *
 * @return The number of workers copied, or ARBOR_EINVAL (rt or out NULL).
 * @par Thread safety
 * Any thread; the counters are read without stopping the workers.
 */
ARBOR_API int arbor_rt_stats(const arbor_rt *rt, arbor_worker_stats *out,
                             unsigned n);

/** The runtime of the calling process, or NULL outside a process. */
ARBOR_API arbor_rt *arbor_rt_current(void);

/* ------------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------------ */

/** Spawn a process running fn(arg).
 *
 * @param      rt    The runtime, or NULL for the calling process's runtime.
 * @param[out] pid   The new pid; may be NULL.
 * @param      fn    The process body.
 * @param      arg   Passed to fn as is.
 * @param      opts  Options, or NULL.  Copied.
 * @return 0, ARBOR_EINVAL (fn NULL; rt NULL outside a process; a stack size
 *         out of range; a name that is empty after sanitising; a flag that
 *         is not an ARBOR_SPAWN_* flag; ARBOR_SPAWN_MONITOR without
 *         monitor_ref), ARBOR_ENOTPROC (ARBOR_SPAWN_LINK or
 *         ARBOR_SPAWN_MONITOR from a caller that is not a process of rt),
 *         ARBOR_ENAMETOOLONG (the dotted path would exceed ARBOR_NAME_MAX-1),
 *         ARBOR_ENOMEM (no memory for the process; a stack that cannot be
 *         mapped is not a spawn error: the process ends at its first run
 *         with reason ARBOR_ENOMEM), or ARBOR_ESHUTDOWN (the runtime is
 *         shutting down).
 * @par Ownership
 * arg is the caller's business: the runtime never touches it.
 * @par Thread safety
 * Any thread, inside or outside a process.  A process that calls it may be
 * ended here if it has been asked to exit.
 */
ARBOR_API ARBOR_NODISCARD int arbor_spawn(arbor_rt *rt, arbor_pid *pid,
                                          arbor_fn fn, void *arg,
                                          const arbor_spawn_opts *opts);

/** The pid of the calling process, or 0 outside a process. */
ARBOR_API arbor_pid arbor_self(void);

/** The index of the worker running the calling process, or -1 outside a
 * process. */
ARBOR_API int arbor_worker(void);

/** Let other runnable processes run; the caller goes to the back of its
 * worker's run queue.
 *
 * @return 0 or ARBOR_ENOTPROC.  If the process has been asked to exit (see
 *         arbor_rt_shutdown()), it ends here and the call does not return.
 * @par Thread safety
 * Inside a process only.
 */
ARBOR_API int arbor_yield(void);

/** End the calling process with @p reason, running its defers.  Does not
 * return when called from a process.
 *
 * @return ARBOR_ENOTPROC when called outside a process.
 */
ARBOR_API int arbor_exit(int reason);

/** Register fn(arg) to run when the calling process ends, however it ends
 * (return, arbor_exit(), or being ended by the runtime).  Defers run in
 * reverse order of registration, on the process's own stack.
 *
 * @return 0, ARBOR_EINVAL (fn NULL), ARBOR_ENOMEM or ARBOR_ENOTPROC.
 * @par Thread safety
 * Inside a process only.
 */
ARBOR_API ARBOR_NODISCARD int arbor_defer(void (*fn)(void *arg), void *arg);

/** Copy the dotted name of process @p pid into @p buf.
 *
 * @param rt   The runtime, or NULL for the calling process's runtime.
 * @param buf  Receives the NUL-terminated name (truncated to cap-1 bytes).
 * @param cap  Size of buf; at least 1.
 * @return The full length of the name (not counting the NUL), ARBOR_EINVAL,
 *         ARBOR_ESRCH (pid is not alive in rt) or ARBOR_EOTHERRT.
 * @par Thread safety
 * Any thread.
 */
ARBOR_API int arbor_name(arbor_rt *rt, arbor_pid pid, char *buf, size_t cap);

/** Whether @p pid is alive in @p rt.
 *
 * @return 1 (alive), 0 (exited, or never existed), ARBOR_EINVAL or
 *         ARBOR_EOTHERRT (pid belongs to another runtime).
 */
ARBOR_API int arbor_alive(arbor_rt *rt, arbor_pid pid);

/** Wait, from a thread that is not one of rt's workers, until @p pid exits.
 *
 * @param      rt          The runtime.
 * @param      pid         The process to wait for.
 * @param      timeout_ms  Negative waits forever; 0 polls.
 * @param[out] reason      The exit reason; may be NULL.
 * A process spawned with ARBOR_SPAWN_JOINABLE can be waited for before or
 * after it exits, and the first successful wait reaps it.  Any other process
 * can only be waited for while it is alive.
 *
 * @return 0, ARBOR_EINVAL, ARBOR_ESRCH (pid has exited and been reaped, or
 *         never existed), ARBOR_EOTHERRT, ARBOR_ETIMEDOUT (the process is
 *         still alive) or ARBOR_EDEADLK (called from a worker of rt).
 * @par Thread safety
 * Any thread except rt's workers.  Several threads may wait for one pid.
 */
ARBOR_API ARBOR_NODISCARD int arbor_wait(arbor_rt *rt, arbor_pid pid,
                                         int64_t timeout_ms, int *reason);

/* ------------------------------------------------------------------------
 * Messages
 *
 * Every process has one mailbox.  Messages from one sender to one receiver
 * arrive in the order they were sent.  Sending never blocks.
 * ------------------------------------------------------------------------ */

/** Tags at or above this value belong to the runtime; arbor_send() refuses
 * them. */
#define ARBOR_TAG_SYSTEM 0xFFFFFF00u
/** An exit signal received by a process that traps exits: from = the process
 * that sent it (the one that exited, or the caller of arbor_kill()),
 * reason = its reason. */
#define ARBOR_TAG_EXIT 0xFFFFFFFEu
/** A monitor fired: from = the monitored process, ref = the monitor's
 * reference, reason = its exit reason (ARBOR_REASON_NOPROC if it did not
 * exist). */
#define ARBOR_TAG_DOWN 0xFFFFFFFDu

/** Largest message body, in bytes. */
#define ARBOR_MSG_MAX ((size_t)1 << 28)

/** A received message: a view into a runtime-owned envelope. */
typedef struct arbor_msg {
  uint32_t tag;     /**< the sender's tag, or ARBOR_TAG_EXIT / _DOWN */
  int reason;       /**< EXIT and DOWN messages: the exit reason */
  arbor_pid from;   /**< the sender; 0 when sent from outside a process */
  uint64_t ref;     /**< DOWN messages: the monitor's reference */
  const void *data; /**< the body (NULL when len is 0) */
  size_t len;       /**< its length in bytes */
} arbor_msg;

/** A selective-receive predicate: nonzero takes the message. */
typedef int (*arbor_match_fn)(const arbor_msg *msg, void *arg);

/** Send a copy of data[0..len) to @p to.
 *
 * Sending to a process that has exited is not an error, as in Erlang: the
 * message is dropped, counted (arbor_rt_dropped()), and the call returns 0.
 *
 * @return 0 (delivered or dropped), ARBOR_EINVAL (to is 0, tag is a system
 *         tag, data NULL with len > 0, len > ARBOR_MSG_MAX), ARBOR_ESRCH (to
 *         names no live runtime) or ARBOR_ENOMEM.
 * @par Ownership
 * The bytes are copied: the caller's buffer is free on return.
 * @par Thread safety
 * Any thread, inside or outside a process.
 */
ARBOR_API int arbor_send(arbor_pid to, uint32_t tag, const void *data,
                         size_t len);

/** Send a heap buffer without copying it: on success the runtime owns @p data
 * and calls free_fn(data) once the receiver is done with it (or the message
 * is dropped).  On failure the caller still owns it.  A calling process
 * that is asked to end ends in this call only after the runtime has taken
 * the buffer.  free_fn runs once, on whichever thread lets the message go:
 * the receiver, a sender that finds the receiver gone, or a worker thread
 * outside any process when the receiver exits with the message unread; it
 * should only release the buffer.
 *
 * @return As arbor_send(); also ARBOR_EINVAL if free_fn is NULL while data
 *         is not.
 */
ARBOR_API int arbor_send_owned(arbor_pid to, uint32_t tag, void *data,
                               size_t len, void (*free_fn)(void *data));

/** Receive the oldest message.
 *
 * @param[out] msg         Filled on success; untouched on error.
 * @param      timeout_ms  Negative waits forever; 0 polls.
 * @return 0, ARBOR_ETIMEDOUT, ARBOR_EINVAL (msg NULL), ARBOR_ENOMEM (no
 *         memory for the timer of a timeout > 0) or ARBOR_ENOTPROC (which
 *         comes first, whatever the other arguments).  A process that is
 *         killed while waiting ends here.
 * @par Ownership
 * msg->data stays valid until this process's next receive, or its exit.
 * @par Thread safety
 * Inside a process only.
 */
ARBOR_API ARBOR_NODISCARD int arbor_recv(arbor_msg *msg, int64_t timeout_ms);

/** Receive the oldest message with tag @p tag; the messages it passes over
 * stay in the mailbox, in their order.  Returns as arbor_recv(). */
ARBOR_API ARBOR_NODISCARD int arbor_recv_tag(arbor_msg *msg, uint32_t tag,
                                             int64_t timeout_ms);

/** Receive the oldest message for which match(msg, arg) is nonzero; the
 * others stay, in their order.  match runs in the receiving process and may
 * not call the runtime.  Returns as arbor_recv(), and ARBOR_EINVAL if match
 * is NULL. */
ARBOR_API ARBOR_NODISCARD int arbor_recv_match(arbor_msg *msg,
                                               arbor_match_fn match, void *arg,
                                               int64_t timeout_ms);

/** Wait for the next message with the stack given back to the system
 * (hibernation, as Erlang's), for processes that wait long and often.
 *
 * If a message is already waiting (one a selective receive passed over
 * counts) it returns at once.  Otherwise the process waits as in
 * arbor_recv() with no timeout, and meanwhile the live part of its stack
 * (typically a few hundred bytes) sits in a right-sized heap buffer and
 * every page of the stack is released; the stack is put back at the same
 * address before the process runs again, so its local variables, and
 * pointers to them, are intact.  It takes nothing from the mailbox: receive
 * the message with arbor_recv() or its variants.  Any message wakes it: a
 * trapped exit signal, a DOWN message, a timer's (arbor_send_after()).  A
 * process that is killed while hibernated ends here, as in arbor_recv().
 * Where the stack cannot be released (no memory for the copy, or the
 * portable ucontext switch) it waits all the same, keeping its stack.
 *
 * @return 0 (a message is waiting) or ARBOR_ENOTPROC.
 * @par Ownership
 * Like a receive, it ends the validity of the message the last receive
 * returned (whose memory is freed before the process sleeps).  Nothing may
 * touch the stack of a hibernated process: another process holding a
 * pointer into it reads zeros there, and its writes are lost.  Pointers
 * into the stack are valid again once the process runs.
 * @par Thread safety
 * Inside a process only.  The cost is a copy of the live stack and one
 * madvise() call on the way in, a copy and a page fault or two on the way
 * out: worth it for waits much longer than that.
 */
ARBOR_API int arbor_hibernate(void);

/** Suspend the calling process for @p ms milliseconds (1 ms resolution;
 * never early).  Messages that arrive meanwhile wait in the mailbox.
 *
 * @return 0, ARBOR_EINVAL (ms < 0), ARBOR_ENOMEM (no memory for the timer)
 *         or ARBOR_ENOTPROC (which comes first).  A process that is killed
 *         while sleeping ends here.
 */
ARBOR_API int arbor_sleep(int64_t ms);

/** Messages sent to processes that had exited, since @p rt was created, or
 * ARBOR_EINVAL. */
ARBOR_API int64_t arbor_rt_dropped(const arbor_rt *rt);

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

/** Register @p name (NUL-terminated, 1..ARBOR_NAME_MAX-1 bytes) for the live
 * process @p pid in pid's runtime.  A name is freed when its process exits.
 *
 * @return 0, ARBOR_EINVAL (name NULL or empty, pid 0), ARBOR_ENAMETOOLONG,
 *         ARBOR_ESRCH (pid is not alive), ARBOR_EEXIST (the name is taken,
 *         or the process already has a name) or ARBOR_ENOMEM.
 * @par Thread safety
 * Any thread.
 */
ARBOR_API int arbor_register(const char *name, arbor_pid pid);

/** Remove a registered name.  rt NULL: the calling process's runtime.
 * @return 0, ARBOR_EINVAL (rt NULL outside a process, name NULL or empty),
 *         ARBOR_ENAMETOOLONG (longer than ARBOR_NAME_MAX-1: it cannot have
 *         been registered) or ARBOR_ESRCH (no such name). */
ARBOR_API int arbor_unregister(arbor_rt *rt, const char *name);

/** Look a registered name up.  rt NULL: the calling process's runtime.
 * @return 0 (*pid set), ARBOR_EINVAL (rt NULL outside a process, name NULL
 *         or empty, pid NULL), ARBOR_ENAMETOOLONG or ARBOR_ESRCH (no such
 *         name). */
ARBOR_API int arbor_whereis(arbor_rt *rt, const char *name, arbor_pid *pid);

/** arbor_send() to a registered name.
 * @return As arbor_send(), and as arbor_whereis() for the name (ARBOR_ESRCH
 *         if no process has it, ARBOR_EINVAL, ARBOR_ENAMETOOLONG). */
ARBOR_API int arbor_send_name(arbor_rt *rt, const char *name, uint32_t tag,
                              const void *data, size_t len);

/* ------------------------------------------------------------------------
 * Links, monitors and exit signals (Erlang's semantics)
 *
 * When a process exits with reason R, each linked process gets an exit
 * signal R, and each monitoring process a DOWN message -- exactly one per
 * link and per monitor, however the process ended.  An exit signal to a
 * process that traps exits becomes an ARBOR_TAG_EXIT message; otherwise a
 * normal one is ignored and any other ends the receiver with the same
 * reason.  ARBOR_REASON_KILL cannot be trapped: the target ends with
 * ARBOR_REASON_KILLED, and that is what its links see.  A process that is
 * waiting (receive, sleep) ends at once; a running one at its next runtime
 * call.
 * ------------------------------------------------------------------------ */

/** Link the calling process and @p pid (both ways; linking twice is one
 * link).
 * @return 0, ARBOR_EINVAL (pid is 0 or the caller itself), ARBOR_ESRCH (pid
 *         is not alive: no link is made and no signal is sent),
 *         ARBOR_EOTHERRT, ARBOR_ENOMEM or ARBOR_ENOTPROC. */
ARBOR_API int arbor_link(arbor_pid pid);

/** Remove the link between the calling process and @p pid, if any.
 * @return 0, ARBOR_EINVAL or ARBOR_ENOTPROC. */
ARBOR_API int arbor_unlink(arbor_pid pid);

/** Monitor @p pid: when it exits, the caller gets one ARBOR_TAG_DOWN
 * message carrying *ref.  Monitoring a process that does not exist gives an
 * immediate DOWN with ARBOR_REASON_NOPROC.  Monitors stack: each call is a
 * new monitor.
 * @return 0, ARBOR_EINVAL (ref NULL, pid 0), ARBOR_EOTHERRT, ARBOR_ENOMEM
 *         or ARBOR_ENOTPROC. */
ARBOR_API int arbor_monitor(arbor_pid pid, uint64_t *ref);

/** Remove a monitor of the calling process.  After it returns no DOWN for
 * @p ref will arrive, and one already in the mailbox is removed.
 * @return 0, ARBOR_ESRCH (no such monitor: it fired and its DOWN was
 *         received, or never existed) or ARBOR_ENOTPROC. */
ARBOR_API int arbor_demonitor(uint64_t ref);

/** Turn exit signals to the calling process into ARBOR_TAG_EXIT messages
 * (on nonzero) or back into signals (on 0).
 * @return The previous setting (0 or 1), or ARBOR_ENOTPROC. */
ARBOR_API int arbor_trap_exit(int on);

/** Send the exit signal @p reason to @p pid, as if from the caller (from 0
 * outside a process); see the rules above.  Killing a process that has
 * already exited does nothing and returns 0.
 * @return 0, ARBOR_EINVAL (pid 0), ARBOR_ESRCH (pid names no live runtime).
 * @par Thread safety
 * Any thread.  A process that kills itself with an abnormal reason (and
 * does not trap exits) ends here.
 */
ARBOR_API int arbor_kill(arbor_pid pid, int reason);

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

/** A timer reference; 0 is never one. */
typedef uint64_t arbor_timer;

/** Send a copy of data[0..len) to @p to after @p ms milliseconds.
 *
 * @param[out] timer  The reference for arbor_timer_cancel(); may be NULL.
 * @return 0, ARBOR_EINVAL (as arbor_send(), or ms < 0), ARBOR_ESRCH (to
 *         names no live runtime) or ARBOR_ENOMEM.
 * @par Thread safety
 * Any thread.
 */
ARBOR_API int arbor_send_after(arbor_pid to, uint32_t tag, const void *data,
                               size_t len, int64_t ms, arbor_timer *timer);

/** Cancel a timer from arbor_send_after().  Exactly one of the cancel and
 * the delivery happens.
 * @return 0 (cancelled: the message will not be sent), ARBOR_ESRCH (it was
 *         already sent or cancelled, or no such timer) or ARBOR_EINVAL.
 * @par Thread safety
 * Any thread.
 */
ARBOR_API int arbor_timer_cancel(arbor_timer timer);

/* ------------------------------------------------------------------------
 * Supervisors (Erlang/OTP's supervisor behaviour)
 *
 * A supervisor is a process that traps exits, starts its children in
 * order, links to each, and restarts them by strategy and policy when they
 * exit; more than `intensity` restarts within `period_ms` make it stop all
 * its children (in reverse start order) and exit with
 * ARBOR_REASON_SHUTDOWN, which its own supervisor sees as a child exit.
 * Specs are plain data (write whole trees as static tables); a supervisor
 * copies its spec when it starts.
 *
 * A supervisor also stops in order when arbor_sup_stop() asks (it exits
 * with ARBOR_NORMAL, as OTP's supervisor:stop, so a process linked to it is
 * not taken down), when its parent exits (with the parent's reason; for a
 * root started outside any process, an exit signal sent from outside any
 * process counts as its parent's), and through auto_shutdown (with
 * ARBOR_REASON_SHUTDOWN).  Exit signals from any other process are ignored,
 * as in OTP.  Even a supervisor that is killed stops its children, in
 * order, before its own exit is reported.
 *
 * The calls that name a supervisor work from any process or thread: they
 * wait for its answer, and fail with ARBOR_ESRCH if it exits first (or is
 * not a supervisor), ARBOR_EINVAL for pid 0, ARBOR_ENOMEM, or ARBOR_EDEADLK
 * when made by the supervisor itself (from one of its event sinks, say) or
 * by one of its workers before that worker's arbor_init_ack(), which the
 * supervisor is waiting for.
 * ------------------------------------------------------------------------ */

enum arbor_strategy {
  ARBOR_ONE_FOR_ONE = 0,  /**< restart only the child that exited */
  ARBOR_ONE_FOR_ALL = 1,  /**< stop all others, restart all */
  ARBOR_REST_FOR_ONE = 2, /**< stop and restart it and those started after */
};

enum arbor_restart {
  ARBOR_PERMANENT = 0, /**< always restarted */
  ARBOR_TRANSIENT = 1, /**< restarted after an abnormal exit only (normal
                            and shutdown exits are normal) */
  ARBOR_TEMPORARY = 2, /**< never restarted, and removed when it exits */
};

enum arbor_child_type {
  ARBOR_WORKER = 0,
  ARBOR_SUPERVISOR = 1,
};

enum arbor_auto_shutdown {
  ARBOR_AUTO_NEVER = 0,           /**< significant children are not special */
  ARBOR_AUTO_ANY_SIGNIFICANT = 1, /**< stop when any significant child has
                                       exited and is not restarted */
  ARBOR_AUTO_ALL_SIGNIFICANT = 2, /**< stop when all significant children
                                       have exited and are not restarted */
};

/** Child shutdown: 0 (default: 5000 ms for workers, infinity for
 * supervisors), a timeout in ms (> 0: send ARBOR_REASON_SHUTDOWN, wait, then
 * kill), or one of these. */
#define ARBOR_SHUTDOWN_DEFAULT 0
#define ARBOR_SHUTDOWN_BRUTAL (-1)   /**< kill at once (ARBOR_REASON_KILL) */
#define ARBOR_SHUTDOWN_INFINITY (-2) /**< send shutdown, wait as long as it takes */

/** Longest child id, including the NUL. */
#define ARBOR_ID_MAX 64

typedef struct arbor_sup_spec arbor_sup_spec;

/** One child of a supervisor. */
typedef struct arbor_child_spec {
  /** Unique within its supervisor; 1..ARBOR_ID_MAX-1 bytes. */
  const char *id;
  /** A worker's body.  It must call arbor_init_ack() once initialised (or
   * to report that its init failed); its supervisor waits for that.  NULL
   * for a supervisor child. */
  arbor_fn start;
  void *arg;
  int restart;      /**< enum arbor_restart */
  int shutdown_ms;  /**< see ARBOR_SHUTDOWN_DEFAULT */
  int type;         /**< enum arbor_child_type */
  int significant;  /**< counts for auto_shutdown (not with PERMANENT) */
  /** ARBOR_SUPERVISOR children: the nested supervisor's spec. */
  const arbor_sup_spec *sup;
  size_t stack_size; /**< 0: the runtime's default */
} arbor_child_spec;

/** A supervisor.  Intensity and period: both 0 means OTP's default, one
 * restart per 5000 ms; period_ms > 0 with intensity 0 means no restart is
 * allowed at all; intensity > 0 with period_ms 0 takes period 5000 ms. */
struct arbor_sup_spec {
  const char *name;      /**< a name segment (see arbor_spawn_opts.name) */
  int strategy;          /**< enum arbor_strategy */
  int intensity;         /**< restarts allowed within period_ms; >= 0 */
  int period_ms;         /**< >= 0 */
  int auto_shutdown;     /**< enum arbor_auto_shutdown */
  const arbor_child_spec *children; /**< started in this order */
  size_t nchildren;
  /** Nonzero: this supervisor owns a key-value store (arbor_store_*) that
   * survives its children's restarts and its own restarts by its parent. */
  int store;
};

/** What made arbor_sup_start() or arbor_sup_start_child() fail. */
typedef struct arbor_sup_error {
  /** ARBOR_EBADSPEC: which field of which spec; otherwise 0. */
  const char *field;
  /** The child at fault (index in its supervisor's children), or -1. */
  long child;
  /** ARBOR_ESTART: the id of the child whose start failed, and its
   * reason (what it passed to arbor_init_ack() or exited with).  A failure
   * inside a nested supervisor gives the ids from this supervisor's child
   * down to the one that failed, joined by '.' ("sub.worker"), cut to
   * fit. */
  char id[ARBOR_ID_MAX];
  int reason;
} arbor_sup_error;

/** Start a supervisor tree, returning once every static child (and every
 * nested supervisor's children) has acknowledged its init.  If a static
 * child fails to start, the ones already started are stopped in reverse
 * order, and the call fails with ARBOR_ESTART and the child's id and reason
 * in *err.  Called from a process of rt, the supervisor is linked to the
 * caller (a failed start unlinks first, so the caller is not taken down);
 * from any other thread, it is a root: wait for its exit with arbor_wait()
 * (it is spawned joinable).
 *
 * @param rt   The runtime, or NULL for the calling process's.
 * @param spec The tree; copied.
 * @param[out] pid  The supervisor's pid; may be NULL.
 * @param[out] err  Details of a failure; may be NULL.
 * @return 0, ARBOR_EINVAL (rt NULL outside a process, spec NULL),
 *         ARBOR_EBADSPEC (nothing started), ARBOR_ESTART,
 *         ARBOR_ENAMETOOLONG (the caller's dotted name and spec->name
 *         together exceed ARBOR_NAME_MAX-1), ARBOR_ENOMEM, ARBOR_ESHUTDOWN or
 *         ARBOR_EDEADLK (from one of rt's worker threads outside any process,
 *         such as the free function of an arbor_send_owned() message that a
 *         dying process leaves unread; event sinks run inside their
 *         supervisor, so they are processes).
 * @par Thread safety
 * Any thread.
 */
ARBOR_API ARBOR_NODISCARD int arbor_sup_start(arbor_rt *rt,
                                              const arbor_sup_spec *spec,
                                              arbor_pid *pid,
                                              arbor_sup_error *err);

/** Called by a supervised worker once it is initialised (reason 0), or when
 * its init failed (reason nonzero; the worker should then return it).  A
 * no-op for a process that is not a supervised child waiting to start.
 * @return 0 or ARBOR_ENOTPROC. */
ARBOR_API int arbor_init_ack(int reason);

/** Stop a supervisor tree in order (children in reverse start order, depth
 * first, each under its shutdown spec) and wait until the supervisor has
 * exited, with reason ARBOR_NORMAL.  A joinable root is not reaped: collect
 * it with arbor_wait().
 * @return 0, ARBOR_EINVAL, ARBOR_ESRCH (not alive), ARBOR_ETIMEDOUT (still
 *         stopping; timeout_ms < 0 waits forever), ARBOR_ENOMEM or
 *         ARBOR_EDEADLK.
 * @par Thread safety
 * Any thread, inside or outside a process. */
ARBOR_API int arbor_sup_stop(arbor_pid sup, int64_t timeout_ms);

/** Start a dynamic child, waiting for its init.
 * @return 0, ARBOR_EBADSPEC (also for a NULL spec), ARBOR_EEXIST (duplicate
 *         id), ARBOR_ESTART, ARBOR_ESRCH (no such supervisor),
 *         ARBOR_EINVAL, ARBOR_ENOMEM or ARBOR_EDEADLK. */
ARBOR_API int arbor_sup_start_child(arbor_pid sup,
                                    const arbor_child_spec *spec,
                                    arbor_pid *child, arbor_sup_error *err);

/** Stop a child under its shutdown spec; its spec is kept (unless it is
 * temporary), so it can be restarted.  Not counted as a restart or failure.
 * Terminating a child that is not running is not an error.
 * @return 0, ARBOR_ENOENT (no such id), ARBOR_ESRCH, ARBOR_EINVAL (id
 *         NULL), ARBOR_ENOMEM or ARBOR_EDEADLK. */
ARBOR_API int arbor_sup_terminate_child(arbor_pid sup, const char *id);

/** Start again a child that was terminated (not counted as a restart).
 * @return 0, ARBOR_EBUSY (it is running, or its restart is pending),
 *         ARBOR_ENOENT, ARBOR_ESTART, ARBOR_ESRCH, ARBOR_EINVAL,
 *         ARBOR_ENOMEM or ARBOR_EDEADLK. */
ARBOR_API int arbor_sup_restart_child(arbor_pid sup, const char *id,
                                      arbor_pid *child);

/** Forget a terminated child's spec.
 * @return 0, ARBOR_EBUSY (it is running, or its restart is pending),
 *         ARBOR_ENOENT, ARBOR_ESRCH, ARBOR_EINVAL, ARBOR_ENOMEM or
 *         ARBOR_EDEADLK. */
ARBOR_API int arbor_sup_delete_child(arbor_pid sup, const char *id);

/** A child's state in arbor_child_info. */
enum arbor_child_state {
  ARBOR_CHILD_RUNNING = 0,
  ARBOR_CHILD_RESTARTING = 1, /**< exited; its restart is pending */
  ARBOR_CHILD_UNDEFINED = 2,  /**< terminated, or not restarted */
};

typedef struct arbor_child_info {
  char id[ARBOR_ID_MAX];
  arbor_pid pid; /**< 0 unless running */
  int state;     /**< enum arbor_child_state */
  /** The spec's values; shutdown_ms with its default resolved (5000 or
   * ARBOR_SHUTDOWN_INFINITY). */
  int type, restart, shutdown_ms, significant;
  /** Times the supervisor restarted this child (each child of a group
   * restart counts; arbor_sup_restart_child() does not). */
  uint64_t restarts;
} arbor_child_info;

/** List a supervisor's children in start order: fills up to cap entries.
 * @return The number of children (may exceed cap), ARBOR_EINVAL (out NULL
 *         with cap > 0), ARBOR_ESRCH, ARBOR_ENOMEM or ARBOR_EDEADLK. */
ARBOR_API int arbor_sup_which_children(arbor_pid sup, arbor_child_info *out,
                                       size_t cap);

typedef struct arbor_child_counts {
  int specs, active, supervisors, workers;
} arbor_child_counts;

/** Count a supervisor's children (as OTP's count_children: specs, running
 * children, and specs of each type whether running or not).
 * @return 0, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ENOMEM or ARBOR_EDEADLK. */
ARBOR_API int arbor_sup_count_children(arbor_pid sup,
                                       arbor_child_counts *out);

/** Describe one child.  @return 0, ARBOR_ENOENT, ARBOR_EINVAL, ARBOR_ESRCH,
 * ARBOR_ENOMEM or ARBOR_EDEADLK. */
ARBOR_API int arbor_sup_get_childspec(arbor_pid sup, const char *id,
                                      arbor_child_info *out);

/* ---- The shared store (ash_flare's stateful supervisor) ----------------
 * A key-value store owned by a supervisor (spec.store != 0).  Processes
 * reach the store of their nearest supervisor that has one by passing
 * sup = 0; any thread can name a supervisor explicitly.  Keys are strings
 * of 1..ARBOR_ID_MAX-1 bytes, values are byte strings copied in and out.
 * Every call is safe from any number of processes and threads at once.
 * Inside an update callback the store is locked for that key's shard: the
 * callback must not call any arbor_store_* function, send, receive, yield
 * or block. */

/** Copy the value of @p key into buf (up to cap bytes).
 * @return The value's full length, ARBOR_ENOENT (no such key),
 *         ARBOR_EINVAL, or ARBOR_ESRCH (no store). */
ARBOR_API int64_t arbor_store_get(arbor_pid sup, const char *key, void *buf,
                                  size_t cap);
/** Set @p key to a copy of val[0..len).
 * @return 0, ARBOR_EINVAL, ARBOR_ENOMEM or ARBOR_ESRCH. */
ARBOR_API int arbor_store_set(arbor_pid sup, const char *key, const void *val,
                              size_t len);
/** Remove @p key.  @return 0, ARBOR_ENOENT, ARBOR_EINVAL or ARBOR_ESRCH. */
ARBOR_API int arbor_store_delete(arbor_pid sup, const char *key);
/** Atomically update @p key: fn(val, &len, exists, arg) gets a copy of the
 * current value (exists 0 and len 0 if absent) in a buffer of
 * max(cap, current length) bytes, may change it and *len in place, and
 * returns 1 to store the result, 0 to leave the key as it was, -1 to delete
 * it.  Store calls made from inside fn fail with ARBOR_EINVAL (except
 * arbor_store_size()), so a callback cannot deadlock on its own shard.
 * @return 0, ARBOR_EINVAL (bad arguments, fn returned another value or a
 *         length past the buffer, or a call from inside a callback),
 *         ARBOR_ENOMEM or ARBOR_ESRCH. */
ARBOR_API int arbor_store_update(arbor_pid sup, const char *key, size_t cap,
                                 int (*fn)(void *val, size_t *len, int exists,
                                           void *arg),
                                 void *arg);
/** The number of keys.  @return It, or ARBOR_ESRCH. */
ARBOR_API int64_t arbor_store_size(arbor_pid sup);

/* ---- Events and introspection ------------------------------------------ */

enum arbor_event_kind {
  ARBOR_EV_CHILD_STARTED = 0,
  ARBOR_EV_CHILD_EXITED = 1,
  ARBOR_EV_CHILD_RESTARTED = 2,
  ARBOR_EV_START_FAILED = 3,
  ARBOR_EV_INTENSITY_EXCEEDED = 4,
  ARBOR_EV_SHUTDOWN_BEGUN = 5,
  ARBOR_EV_SHUTDOWN_FINISHED = 6,
  /** A process has run for arbor_rt_opts.watchdog_ms without switching
   * ("process_stuck", level WARN).  Not a supervision event: any process
   * can be reported.  child is its pid, child_id its dotted name ("" if it
   * has none; up to ARBOR_NAME_MAX - 1 bytes, longer than other events'
   * ids), sup and sup_name the supervisor that started it (0 and "" if
   * none), worker the worker it holds, and duration_ns how long it had run
   * when the watchdog saw it (at least the threshold).  Reported once per
   * episode, from the watchdog thread, while the process may still be
   * running: the pid may be dead by the time the sink looks it up. */
  ARBOR_EV_PROC_STUCK = 7,
};

enum arbor_event_level {
  ARBOR_LEVEL_DEBUG = 0, /**< child started */
  ARBOR_LEVEL_INFO = 1,  /**< normal exits, restarts, shutdown */
  ARBOR_LEVEL_WARN = 2,  /**< abnormal exits, start failures, stuck */
  ARBOR_LEVEL_ERROR = 3, /**< intensity exceeded */
};

/** One supervision event.  The strings are valid during the sink call. */
typedef struct arbor_event {
  int64_t time_ns;        /**< CLOCK_REALTIME */
  int kind;               /**< enum arbor_event_kind */
  int level;              /**< enum arbor_event_level */
  const char *sup_name;   /**< the supervisor's dotted name */
  arbor_pid sup;
  const char *child_id;   /**< "" for supervisor-wide events */
  arbor_pid child;        /**< 0 if none */
  int reason;             /**< exit or failure reason */
  uint64_t restarts;      /**< the child's restart count */
  int worker;             /**< ARBOR_EV_PROC_STUCK: the worker's index */
  int64_t duration_ns;    /**< ARBOR_EV_PROC_STUCK: how long it had run */
} arbor_event;

/** An event sink: called on the supervisor's worker, or on the runtime's
 * watchdog thread for ARBOR_EV_PROC_STUCK (so a sink may run on several
 * threads at once); must not block.  While the watchdog thread is in a
 * sink it reports nothing else and hands no work over: return soon. */
typedef void (*arbor_event_sink)(const arbor_event *ev, void *ud);

/** Route @p rt's supervision events to sink(ev, ud) for events at or above
 * @p level.  NULL sink: back to the default, logfmt lines on stderr at WARN
 * (ud and level are then ignored).
 * @return 0 or ARBOR_EINVAL. */
ARBOR_API int arbor_rt_set_event_sink(arbor_rt *rt, arbor_event_sink sink,
                                      void *ud, int level);

/** Built-in sinks: one logfmt line (time=... sup=... event=...) or one JSON
 * object per line, written to ud (a FILE *; NULL: stderr). */
ARBOR_API void arbor_event_sink_logfmt(const arbor_event *ev, void *ud);
ARBOR_API void arbor_event_sink_jsonl(const arbor_event *ev, void *ud);

/** The name of an event kind, for logs: "child_started", ... ("unknown"
 * for other values). */
ARBOR_API const char *arbor_event_name(int kind);

enum arbor_dump_format {
  ARBOR_DUMP_TEXT = 0, /**< an indented tree, like `tree` */
  ARBOR_DUMP_DOT = 1,  /**< Graphviz */
};

/** Write the running tree under @p sup (pids, states, restart counts) into
 * buf (NUL-terminated, truncated to cap-1).
 * @return The full length, ARBOR_EINVAL (sup 0, buf NULL with cap > 0, an
 *         unknown format), ARBOR_ESRCH, ARBOR_ENOMEM or ARBOR_EDEADLK (as
 *         arbor_sup_which_children() for sup; a child supervisor that
 *         cannot answer is shown with a note instead).  On error buf is
 *         untouched. */
ARBOR_API int64_t arbor_sup_dump(arbor_pid sup, int format, char *buf,
                                 size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* ARBOR_H */
