/* runtime/registry.c -- registered names: arbor_register(), arbor_whereis()
 * and sending by name.
 *
 * One chained hash table per runtime, under one mutex: registering and
 * looking names up are rare next to sending by pid.  Lock order: the table's
 * lock, then a process's spinlock (which guards its `regname`); the exit path
 * takes the name out under the process's lock, releases it, and only then
 * takes the table's lock to drop the entry.
 *
 * Memory: entries and the bucket array are malloc'd and freed under the lock;
 * a process's copy of its name is freed by whoever takes it out of the record.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

struct arbor__regent {
  struct arbor__regent *next;
  arbor_pid pid;
  char name[];
};

static uint64_t hash(const char *s)
{
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

  while (*s != '\0')
    h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
  return h;
}

static int check_name(const char *name)
{
  size_t n;

  if (name == NULL || name[0] == '\0')
    return ARBOR_EINVAL;
  n = strnlen(name, ARBOR_NAME_MAX);
  return n >= ARBOR_NAME_MAX ? ARBOR_ENAMETOOLONG : 0;
}

void arbor__registry_init(arbor_rt *rt)
{
  pthread_mutex_init(&rt->reg_lock, NULL);
  rt->reg = NULL;
  rt->nreg = rt->capreg = 0;
}

void arbor__registry_fini(arbor_rt *rt)
{
  for (size_t i = 0; i < rt->capreg; i++) {
    struct arbor__regent *e = rt->reg[i];

    while (e != NULL) {
      struct arbor__regent *next = e->next;

      free(e);
      e = next;
    }
  }
  free(rt->reg);
  pthread_mutex_destroy(&rt->reg_lock);
}

/* Under reg_lock. */
static struct arbor__regent **find(arbor_rt *rt, const char *name)
{
  struct arbor__regent **pe;

  if (rt->capreg == 0)
    return NULL;
  for (pe = &rt->reg[hash(name) & (rt->capreg - 1)]; *pe != NULL;
       pe = &(*pe)->next)
    if (strcmp((*pe)->name, name) == 0)
      return pe;
  return NULL;
}

/* Under reg_lock: keep the load factor at most 1. */
static int grow(arbor_rt *rt)
{
  size_t cap = rt->capreg != 0 ? rt->capreg * 2 : 16;
  struct arbor__regent **v;

  if (rt->nreg < rt->capreg)
    return 0;
  v = calloc(cap, sizeof(*v));
  if (v == NULL)
    return ARBOR_ENOMEM;
  for (size_t i = 0; i < rt->capreg; i++) {
    struct arbor__regent *e = rt->reg[i];

    while (e != NULL) {
      struct arbor__regent *next = e->next;
      size_t b = hash(e->name) & (cap - 1);

      e->next = v[b];
      v[b] = e;
      e = next;
    }
  }
  free(rt->reg);
  rt->reg = v;
  rt->capreg = cap;
  return 0;
}

int arbor_register(const char *name, arbor_pid pid)
{
  struct arbor__regent *e;
  struct arbor__proc *p;
  size_t len;
  arbor_rt *rt;
  char *copy;
  int err;

  err = check_name(name);
  if (err < 0)
    return err;
  if (pid == 0)
    return ARBOR_EINVAL;
  rt = arbor__rt_of_pid(pid);
  if (rt == NULL)
    return ARBOR_ESRCH;
  err = arbor__proc_ref(rt, pid, &p);
  if (err < 0)
    return err;
  len = strlen(name);
  e = malloc(sizeof(*e) + len + 1);
  copy = malloc(len + 1);
  if (e == NULL || copy == NULL) {
    free(e);
    free(copy);
    arbor__proc_unref(p);
    return ARBOR_ENOMEM;
  }
  memcpy(e->name, name, len + 1);
  memcpy(copy, name, len + 1);
  e->pid = pid;
  pthread_mutex_lock(&rt->reg_lock);
  if (find(rt, name) != NULL) {
    err = ARBOR_EEXIST;
  } else if ((err = grow(rt)) == 0) {
    arbor__proc_lock(p);
    if (p->dead)
      err = ARBOR_ESRCH;
    else if (p->regname != NULL)
      err = ARBOR_EEXIST;
    else
      p->regname = copy;
    arbor__proc_unlock(p);
    if (err == 0) {
      size_t b = hash(name) & (rt->capreg - 1);

      e->next = rt->reg[b];
      rt->reg[b] = e;
      rt->nreg++;
    }
  }
  pthread_mutex_unlock(&rt->reg_lock);
  arbor__proc_unref(p);
  if (err != 0) {
    free(e);
    free(copy);
  }
  return err;
}

static arbor_rt *rt_or_current(arbor_rt *rt)
{
  return rt != NULL ? rt : arbor_rt_current();
}

int arbor_unregister(arbor_rt *rt, const char *name)
{
  struct arbor__regent **pe, *e = NULL;
  struct arbor__proc *p;
  int err = check_name(name);

  rt = rt_or_current(rt);
  if (err < 0 || rt == NULL)
    return err < 0 ? err : ARBOR_EINVAL;
  pthread_mutex_lock(&rt->reg_lock);
  pe = find(rt, name);
  if (pe != NULL) {
    e = *pe;
    *pe = e->next;
    rt->nreg--;
    if (arbor__proc_ref(rt, e->pid, &p) == 0) {
      char *old = NULL;

      arbor__proc_lock(p);
      if (p->regname != NULL && strcmp(p->regname, name) == 0) {
        old = p->regname;
        p->regname = NULL;
      }
      arbor__proc_unlock(p);
      arbor__proc_unref(p);
      free(old);
    }
  }
  pthread_mutex_unlock(&rt->reg_lock);
  if (e == NULL)
    return ARBOR_ESRCH;
  free(e);
  return 0;
}

int arbor_whereis(arbor_rt *rt, const char *name, arbor_pid *pid)
{
  struct arbor__regent **pe;
  int err = check_name(name);

  rt = rt_or_current(rt);
  if (err < 0 || rt == NULL || pid == NULL)
    return err < 0 ? err : ARBOR_EINVAL;
  pthread_mutex_lock(&rt->reg_lock);
  pe = find(rt, name);
  if (pe != NULL)
    *pid = (*pe)->pid;
  pthread_mutex_unlock(&rt->reg_lock);
  return pe != NULL ? 0 : ARBOR_ESRCH;
}

int arbor_send_name(arbor_rt *rt, const char *name, uint32_t tag,
                    const void *data, size_t len)
{
  arbor_pid pid;
  int err = arbor_whereis(rt, name, &pid);

  if (err < 0)
    return err;
  return arbor_send(pid, tag, data, len);
}

void arbor__registry_drop(arbor_rt *rt, const char *name, arbor_pid pid)
{
  struct arbor__regent **pe, *e = NULL;

  pthread_mutex_lock(&rt->reg_lock);
  pe = find(rt, name);
  if (pe != NULL && (*pe)->pid == pid) {
    e = *pe;
    *pe = e->next;
    rt->nreg--;
  }
  pthread_mutex_unlock(&rt->reg_lock);
  free(e);
}
