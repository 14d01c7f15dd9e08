/* runtime/sup_dump.c -- a running supervision tree as text or Graphviz DOT.
 *
 * Built only on the public management calls (arbor_sup_which_children(),
 * arbor_name(); arbor__rt_of_pid() only names the runtime that arbor_name()
 * wants), so it sees what any caller sees: the dump asks the supervisor for its
 * children, then each running child supervisor for its own, depth first.  Each
 * supervisor answers for itself, so the dump is a consistent list per
 * supervisor but not a snapshot of the whole tree: a subtree may change between
 * two questions.  A child supervisor that cannot answer (it exited meanwhile,
 * the caller is that very supervisor, or its list could not be allocated)
 * is shown with a note in place of its children, so once the root has
 * answered the call succeeds.  Nothing is locked here.
 *
 * TEXT looks like tree(1), with UTF-8 box-drawing characters:
 *
 *   root (pid 0x1000001, supervisor, running)
 *   ├── db (pid 0x1000002, worker, running, restarts 0)
 *   └── telemetry (pid 0x1000003, supervisor, running, restarts 2)
 *       ├── collector (pid -, worker, restarting, restarts 3)
 *       └── flusher (pid 0x1000005, worker, running, restarts 0)
 *
 * The first line is the supervisor's dotted name (its restart count is
 * known only to its parent); "pid -" means no running incarnation.  DOT is
 * one digraph with a node per supervisor and child (labelled with id, pid,
 * type, state and restarts; supervisors are boxes, workers ellipses;
 * restarting nodes orange, undefined ones dashed grey) and an edge from
 * each supervisor to each child.  Output is written as snprintf() does:
 * the full length is returned, at most cap-1 bytes are stored (never half a
 * UTF-8 character) and the buffer is always NUL-terminated when cap > 0.
 *
 * Errors come only from the root (before anything is written, so a failed
 * call leaves buf untouched): ARBOR_EINVAL, ARBOR_ESRCH, whatever
 * arbor_sup_which_children() returns, and ARBOR_ENOMEM if the root's list
 * cannot be allocated.
 *
 * Memory: each level's child list is a heap array freed before returning;
 * nothing outlives the call.  A calling process can be ended inside the
 * walk (killed while it waits for a supervisor's answer): the lists held
 * at that moment are in `lists`, and a defer registered for the call frees
 * them -- it runs on the process's own stack, below this call's frames,
 * which are still there -- and is removed again when the call returns.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sup.h"

/* Deeper levels are listed as one note line, not walked. */
#define MAX_DEPTH 64

struct dump {
  char *buf;
  size_t room; /* bytes of buf that may hold text (cap-1, or 0) */
  int64_t len; /* full length so far, stored or not */
  int format;
  unsigned next_node;   /* DOT node numbers */
  /* The list of each level being walked (index: depth), or NULL. */
  arbor_child_info *lists[MAX_DEPTH];
  bool last[MAX_DEPTH]; /* TEXT: whether the ancestor at each depth is the
                           last of its siblings */
};

static void put(struct dump *d, const char *s, size_t n)
{
  if ((uint64_t)d->len < d->room) {
    size_t avail = d->room - (size_t)d->len;

    memcpy(d->buf + d->len, s, n < avail ? n : avail);
  }
  d->len += (int64_t)n;
}

static void put_str(struct dump *d, const char *s)
{
  put(d, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct dump *d,
                                                       const char *fmt, ...)
{
  char tmp[128];
  va_list ap;
  int n;

  va_start(ap, fmt);
  /* clang-analyzer 14 loses track of va_start here (a false positive). */
  n = vsnprintf(tmp, sizeof(tmp), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
  va_end(ap);
  if (n > 0)
    put(d, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* An id or name.  Control bytes become '?' so that a line stays a line;
 * in DOT, quotes and backslashes are escaped. */
static void put_id(struct dump *d, const char *s)
{
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p < ' ' || *p == 0x7f)
      put(d, "?", 1);
    else if (d->format == ARBOR_DUMP_DOT && (*p == '"' || *p == '\\'))
      put(d, *p == '"' ? "\\\"" : "\\\\", 2);
    else
      put(d, (const char *)p, 1);
  }
}

static const char *type_name(int type)
{
  return type == ARBOR_SUPERVISOR ? "supervisor" : "worker";
}

static const char *state_name(int state)
{
  switch (state) {
  case ARBOR_CHILD_RUNNING:
    return "running";
  case ARBOR_CHILD_RESTARTING:
    return "restarting";
  default:
    return "undefined";
  }
}

static void put_pid(struct dump *d, arbor_pid pid)
{
  if (pid != 0)
    putf(d, "pid 0x%llx", (unsigned long long)pid);
  else
    put_str(d, "pid -");
}

/* The children of sup into a fresh array (*out, to free; set before any
 * call that may end the caller), or an error.  The list can grow between
 * two calls, hence the loop. */
static int list_children(arbor_pid sup, arbor_child_info **out)
{
  size_t cap = 16;

  for (;;) {
    arbor_child_info *v = malloc(cap * sizeof(*v));
    int n;

    if (v == NULL)
      return ARBOR_ENOMEM;
    *out = v;
    n = arbor_sup_which_children(sup, v, cap);
    if (n >= 0 && (size_t)n <= cap)
      return n;
    free(v);
    *out = NULL;
    if (n < 0)
      return n;
    cap = (size_t)n + 16;
  }
}

/* ---- TEXT ---------------------------------------------------------------- */

static void text_prefix(struct dump *d, int depth, bool last)
{
  for (int i = 0; i < depth; i++)
    put_str(d, d->last[i] ? "    " : "\u2502   ");
  put_str(d, last ? "\u2514\u2500\u2500 " : "\u251c\u2500\u2500 ");
}

static void text_children(struct dump *d, const arbor_child_info *v, int n,
                          int depth);

/* The lines below the running child supervisor `sup`. */
static void text_subtree(struct dump *d, arbor_pid sup, int depth)
{
  arbor_child_info *v = NULL;
  int n = depth < MAX_DEPTH ? list_children(sup, &d->lists[depth]) : 0;

  if (depth < MAX_DEPTH)
    v = d->lists[depth];
  if (n < 0) {
    text_prefix(d, depth, true);
    putf(d, "(children unavailable: %s)\n", arbor_err_name(n));
  } else if (depth >= MAX_DEPTH) {
    text_prefix(d, depth, true);
    put_str(d, "(deeper levels not shown)\n");
  } else {
    text_children(d, v, n, depth);
  }
  free(v);
  if (depth < MAX_DEPTH)
    d->lists[depth] = NULL;
}

/* One line per child (already listed) and the subtrees of supervisors. */
static void text_children(struct dump *d, const arbor_child_info *v, int n,
                          int depth)
{
  for (int i = 0; i < n; i++) {
    const arbor_child_info *c = &v[i];
    bool last = i == n - 1;

    text_prefix(d, depth, last);
    put_id(d, c->id);
    put_str(d, " (");
    put_pid(d, c->pid);
    putf(d, ", %s, %s, restarts %llu)\n", type_name(c->type),
         state_name(c->state), (unsigned long long)c->restarts);
    if (c->type == ARBOR_SUPERVISOR && c->pid != 0) {
      d->last[depth] = last;
      text_subtree(d, c->pid, depth + 1);
    }
  }
}

/* ---- DOT ----------------------------------------------------------------- */

static void dot_node(struct dump *d, unsigned node, const char *id,
                     arbor_pid pid, int type, int state,
                     const uint64_t *restarts)
{
  putf(d, "  n%u [label=\"", node);
  put_id(d, id);
  put_str(d, "\\n");
  put_pid(d, pid);
  putf(d, "\\n%s, %s", type_name(type), state_name(state));
  if (restarts != NULL)
    putf(d, "\\nrestarts %llu", (unsigned long long)*restarts);
  putf(d, "\", shape=%s", type == ARBOR_SUPERVISOR ? "box" : "ellipse");
  if (state == ARBOR_CHILD_RESTARTING)
    put_str(d, ", color=orange");
  else if (state != ARBOR_CHILD_RUNNING)
    put_str(d, ", style=dashed, color=gray50");
  put_str(d, "];\n");
}

static void dot_children(struct dump *d, const arbor_child_info *v, int n,
                         unsigned node, int depth);

/* The nodes and edges below the running child supervisor `sup`, whose node
 * is `node`. */
static void dot_subtree(struct dump *d, arbor_pid sup, unsigned node, int depth)
{
  arbor_child_info *v = NULL;
  int n = depth < MAX_DEPTH ? list_children(sup, &d->lists[depth]) : 0;

  if (depth < MAX_DEPTH)
    v = d->lists[depth];
  if (n < 0 || depth >= MAX_DEPTH) {
    unsigned note = d->next_node++;

    putf(d, "  n%u [label=\"%s\", shape=plaintext];\n  n%u -> n%u;\n", note,
         n < 0 ? arbor_err_name(n) : "...", node, note);
  } else {
    dot_children(d, v, n, node, depth);
  }
  free(v);
  if (depth < MAX_DEPTH)
    d->lists[depth] = NULL;
}

static void dot_children(struct dump *d, const arbor_child_info *v, int n,
                         unsigned node, int depth)
{
  for (int i = 0; i < n; i++) {
    const arbor_child_info *c = &v[i];
    unsigned child = d->next_node++;

    dot_node(d, child, c->id, c->pid, c->type, c->state, &c->restarts);
    putf(d, "  n%u -> n%u;\n", node, child);
    if (c->type == ARBOR_SUPERVISOR && c->pid != 0)
      dot_subtree(d, c->pid, child, depth + 1);
  }
}

/* ---- the call ------------------------------------------------------------ */

/* The defer of a dump made by a process: free the lists it holds. */
static void free_lists(void *arg)
{
  struct dump *d = arg;

  for (int i = 0; i < MAX_DEPTH; i++) {
    free(d->lists[i]);
    d->lists[i] = NULL;
  }
}

/* Remove that defer on the way out.  It is the process's last one: nothing
 * the dump calls registers defers or runs code that could. */
static void undefer(struct arbor__proc *self, const struct dump *d)
{
  arbor__assert(self->ndefers > 0 &&
                self->defers[self->ndefers - 1].fn == free_lists &&
                self->defers[self->ndefers - 1].arg == d);
  self->ndefers--;
}

/* Cut the stored text back to a whole UTF-8 character. */
static void trim_utf8(const char *buf, size_t *end)
{
  size_t i = *end, need;
  unsigned char lead;

  /* Find the lead byte of the last character (at most 3 bytes back). */
  while (i > 0 && *end - i < 3 && ((unsigned char)buf[i - 1] & 0xc0) == 0x80)
    i--;
  if (i == 0)
    return;
  lead = (unsigned char)buf[i - 1];
  need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if ((i - 1) + need > *end)
    *end = i - 1;
}

int64_t arbor_sup_dump(arbor_pid sup, int format, char *buf, size_t cap)
{
  struct dump d = {.buf = buf, .room = cap > 0 ? cap - 1 : 0, .format = format};
  char name[ARBOR_NAME_MAX];
  arbor_child_info *v;
  struct arbor__proc *self = arbor__proc_current();
  arbor_rt *owner;
  int n, len;

  /* A process asked to end ends here, holding nothing. */
  if (self != NULL)
    arbor__proc_checkpoint(self);
  if (sup == 0 || (buf == NULL && cap > 0) ||
      (format != ARBOR_DUMP_TEXT && format != ARBOR_DUMP_DOT))
    return ARBOR_EINVAL;
  owner = arbor__rt_of_pid(sup);
  if (owner == NULL)
    return ARBOR_ESRCH;
  /* From here on, a process can be ended holding lists (see the top). */
  if (self != NULL && arbor_defer(free_lists, &d) < 0)
    return ARBOR_ENOMEM;
  /* Both questions about the root come before anything is written, so a
   * failed call leaves buf untouched. */
  n = list_children(sup, &d.lists[0]);
  v = d.lists[0];
  if (n >= 0) {
    len = arbor_name(owner, sup, name, sizeof(name));
    if (len < 0)
      n = len;
  }
  if (n < 0) {
    free_lists(&d);
    if (self != NULL)
      undefer(self, &d);
    return n;
  }
  if (len == 0)
    strcpy(name, "(unnamed)");

  if (format == ARBOR_DUMP_TEXT) {
    put_id(&d, name);
    put_str(&d, " (");
    put_pid(&d, sup);
    put_str(&d, ", supervisor, running)\n");
    text_children(&d, v, n, 0);
  } else {
    put_str(&d, "digraph arbor {\n  node [fontname=\"monospace\"];\n");
    dot_node(&d, d.next_node++, name, sup, ARBOR_SUPERVISOR,
             ARBOR_CHILD_RUNNING, NULL);
    dot_children(&d, v, n, 0, 0);
    put_str(&d, "}\n");
  }
  free_lists(&d);
  if (self != NULL)
    undefer(self, &d);

  if (cap > 0) {
    size_t end = (uint64_t)d.len < d.room ? (size_t)d.len : d.room;

    if ((uint64_t)d.len > d.room)
      trim_utf8(buf, &end);
    buf[end] = '\0';
  }
  return d.len;
}
