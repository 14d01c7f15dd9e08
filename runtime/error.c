/* runtime/error.c -- the error table: arbor_strerror() and arbor_err_name(). */
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
