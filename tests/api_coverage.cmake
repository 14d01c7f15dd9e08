# api_coverage.cmake -- fail unless tests/test_api.c covers the whole API.
#
# Run by ctest as `cmake -DHEADER=include/arbor.h -DTESTFILE=tests/test_api.c
# -P api_coverage.cmake`.  Every function the header declares with ARBOR_API
# (at the start of a line) must be in the list between API-LIST-BEGIN and
# API-LIST-END at the top of the test file, the list must name nothing else,
# and each listed function must be called somewhere after the list.  So a new
# API function without a misuse test fails the build's tests.
cmake_minimum_required(VERSION 3.21)
file(READ "${HEADER}" header)
file(READ "${TESTFILE}" test)

string(REGEX MATCHALL "\nARBOR_API[^;(]*\\(" decls "${header}")
set(api "")
foreach(d IN LISTS decls)
  string(REGEX MATCH "([A-Za-z_][A-Za-z0-9_]*)[ \t\r\n]*\\($" _ "${d}")
  list(APPEND api "${CMAKE_MATCH_1}")
endforeach()
list(LENGTH api napi)
if(napi EQUAL 0)
  message(FATAL_ERROR "no ARBOR_API declarations found in ${HEADER}")
endif()

string(FIND "${test}" "API-LIST-BEGIN" begin)
string(FIND "${test}" "API-LIST-END" end)
if(begin EQUAL -1 OR end EQUAL -1 OR end LESS begin)
  message(FATAL_ERROR "${TESTFILE}: no API-LIST-BEGIN ... API-LIST-END block")
endif()
math(EXPR len "${end} - ${begin}")
string(SUBSTRING "${test}" ${begin} ${len} block)
string(SUBSTRING "${test}" ${end} -1 body)
string(REGEX MATCHALL "arbor_[a-z0-9_]+" listed "${block}")

set(problems "")
foreach(fn IN LISTS api)
  if(NOT fn IN_LIST listed)
    string(APPEND problems "\n  ${fn}: declared in arbor.h, missing from the list")
  endif()
  if(NOT body MATCHES "[^A-Za-z0-9_]${fn}[ \t\r\n]*\\(")
    string(APPEND problems "\n  ${fn}: never called in ${TESTFILE}")
  endif()
endforeach()
foreach(fn IN LISTS listed)
  if(NOT fn IN_LIST api)
    string(APPEND problems "\n  ${fn}: listed, but not an ARBOR_API function")
  endif()
endforeach()
if(problems)
  message(FATAL_ERROR "API misuse coverage is incomplete:${problems}")
endif()
message(STATUS "test_api.c covers all ${napi} ARBOR_API functions")
