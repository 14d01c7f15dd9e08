/* runtime/name.c -- dotted process names: sanitising and sharing them.
 *
 * Memory: a name is immutable once made and reference-counted; the last
 * process (or lookup) to drop it frees it.  Children given no name of their
 * own share their parent's, so spawning an unnamed child costs one atomic
 * increment at most, and nothing at all when the parent is unnamed.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

static int is_name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_';
}

/* Sanitise seg into out (which has room for cap bytes, no NUL written);
 * returns the length, or -1 if it would not fit. */
static long sanitise(const char *seg, char *out, size_t cap)
{
  size_t n = 0;
  int pending_sep = 0;

  for (const char *c = seg; *c != '\0'; c++) {
    if (!is_name_char(*c) || *c == '_') {
      pending_sep = n > 0; /* leading separators are dropped */
      continue;
    }
    if (pending_sep) {
      if (n >= cap)
        return -1;
      out[n++] = '_';
      pending_sep = 0;
    }
    if (n >= cap)
      return -1;
    out[n++] = *c;
  }
  return (long)n; /* trailing separators were never written */
}

int arbor__name_make(const struct arbor__name *parent, const char *seg,
                     struct arbor__name **out)
{
  char buf[ARBOR_NAME_MAX];
  size_t plen = parent != NULL ? parent->len : 0;
  size_t prefix = plen > 0 ? plen + 1 : 0;
  struct arbor__name *n;
  long slen;

  if (prefix >= ARBOR_NAME_MAX - 1)
    return ARBOR_ENAMETOOLONG;
  slen = sanitise(seg, buf, ARBOR_NAME_MAX - 1 - prefix);
  if (slen < 0)
    return ARBOR_ENAMETOOLONG;
  if (slen == 0)
    return ARBOR_EINVAL;
  n = malloc(sizeof(*n) + prefix + (size_t)slen + 1);
  if (n == NULL)
    return ARBOR_ENOMEM;
  atomic_init(&n->refs, 1);
  n->len = (uint32_t)(prefix + (size_t)slen);
  if (prefix > 0) {
    memcpy(n->s, parent->s, plen);
    n->s[plen] = '.';
  }
  memcpy(n->s + prefix, buf, (size_t)slen);
  n->s[n->len] = '\0';
  *out = n;
  return 0;
}

void arbor__name_unref(struct arbor__name *n)
{
  /* Acq_rel: the last holder must see every use by the others before it
   * frees the name. */
  if (n != NULL &&
      atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) == 1)
    free(n);
}
