/* runtime/error.c -- the error table (arbor_strerror(), arbor_err_name())
 * and the names of exit reasons. */
#include "arbor.h"

const char *arbor_strerror(int err)
{
  switch (err) {
#define XX(name, value, msg)                                                   \
  case ARBOR_##name:                                                           \
    return msg;
    ARBOR_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "success";
  default:
    return "unknown error";
  }
}

const char *arbor_err_name(int err)
{
  switch (err) {
#define XX(name, value, msg)                                                   \
  case ARBOR_##name:                                                           \
    return "ARBOR_" #name;
    ARBOR_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "ARBOR_OK";
  default:
    return "ARBOR_UNKNOWN";
  }
}

const char *arbor_reason_name(int reason)
{
  switch (reason) {
  case ARBOR_NORMAL:
    return "normal";
  case ARBOR_REASON_SHUTDOWN:
    return "shutdown";
  case ARBOR_REASON_KILLED:
    return "killed";
  case ARBOR_REASON_KILL:
    return "kill";
  case ARBOR_REASON_NOPROC:
    return "noproc";
  case ARBOR_ESTACKOVERFLOW:
    return "stack_overflow";
  default:
    return reason > 0 ? "user" : arbor_err_name(reason);
  }
}
