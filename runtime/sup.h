/* runtime/sup.h -- what the supervision files share: supervisor.c (the
 * supervisor process and its management calls), sup_store.c (the shared
 * store), sup_event.c (events, sinks) and sup_dump.c (tree dumps). */
#ifndef ARBOR_RUNTIME_SUP_H
#define ARBOR_RUNTIME_SUP_H

#include "runtime/rt.h"

/* Runtime-internal message tags, in the range arbor_send() refuses
 * (macros: the values do not fit an int enumerator). */
#define ARBOR__TAG_INIT_ACK (ARBOR_TAG_SYSTEM + 1u)  /* child -> supervisor */
#define ARBOR__TAG_SUP_CALL (ARBOR_TAG_SYSTEM + 2u)  /* management request */
#define ARBOR__TAG_SUP_REPLY (ARBOR_TAG_SYSTEM + 3u) /* its answer */

/* ---- sup_store.c ----------------------------------------------------------
 * A store is reference-counted: the supervisor spec that owns it (the root
 * start, or the parent's child record) holds one reference for as long as
 * the spec exists, each running incarnation of the supervisor holds one in
 * its process record (proc->store), and each arbor_store_* call holds one
 * while it works.  The last unref frees it. */
struct arbor__store *arbor__store_new(void);
void arbor__store_ref(struct arbor__store *s);
void arbor__store_unref(struct arbor__store *s);

/* The store named by `sup` (0: the nearest supervisor of the calling
 * process that has one, walking proc->sup upwards), with a reference the
 * caller must drop; NULL if none.  Implemented in sup_store.c on top of
 * arbor__proc_ref() and proc->store / proc->sup. */
struct arbor__store *arbor__store_find(arbor_pid sup);

/* ---- sup_event.c ----------------------------------------------------------- */

/* Fill in time and level and hand ev to rt's sink if its level passes.
 * Safe from any thread; the sink is called without rt->event_lock held
 * (the lock only guards reading the sink, ud and level). */
void arbor__sup_emit(arbor_rt *rt, arbor_event *ev);

/* The default level of each kind (DEBUG for started, ...). */
int arbor__event_level_of(int kind, int reason);

#endif /* ARBOR_RUNTIME_SUP_H */
