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

/* ---- supervisor.c and sup_call.c ----------------------------------------
 * The supervisor process and its child table (supervisor.c) and the
 * management calls and start handshake (sup_call.c). */
struct arbor__sup;
struct arbor__sup_req;
struct arbor__sup_tree;
int arbor__sup_body(void *arg);
int arbor__sup_tree_copy(const arbor_sup_spec *spec,
                         struct arbor__sup_tree **out);
int arbor__sup_child_copy(const arbor_child_spec *spec,
                          struct arbor__sup_tree **out);
void arbor__sup_tree_free(struct arbor__sup_tree *t);
int arbor__sup_op_start_child(struct arbor__sup *st, struct arbor__sup_tree *t,
                              arbor_pid *pid, arbor_sup_error *err);
int arbor__sup_op_terminate(struct arbor__sup *st, const char *id);
int arbor__sup_op_restart(struct arbor__sup *st, const char *id,
                          arbor_pid *pid, arbor_sup_error *err);
int arbor__sup_op_delete(struct arbor__sup *st, const char *id);
int arbor__sup_op_which(struct arbor__sup *st, arbor_child_info *out,
                        size_t cap);
int arbor__sup_op_count(struct arbor__sup *st, arbor_child_counts *out);
int arbor__sup_op_get(struct arbor__sup *st, const char *id,
                      arbor_child_info *out);
void arbor__sup_op_stop(struct arbor__sup *st);
/* sup_call.c */
void arbor__sup_call_serve(struct arbor__sup *st, const arbor_msg *m);
bool arbor__sup_call_is_stop(const arbor_msg *m);
bool arbor__sup_call_is_boot(const arbor_msg *m);
struct arbor__sup_req *arbor__sup_boot_hold(const arbor_msg *m,
                                            arbor_pid *starter);
struct arbor__sup_tree *arbor__sup_boot_take(struct arbor__sup_req *r);
void arbor__sup_boot_reply(struct arbor__sup_req *r, int rc,
                           const arbor_sup_error *err);
void arbor__sup_req_release(struct arbor__sup_req *r);

#endif /* ARBOR_RUNTIME_SUP_H */
