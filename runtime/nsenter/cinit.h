// The C init's entry point (cinit.c), called by the nsenter constructor once
// the process is in its namespaces, with the init socket and the plan.
#ifndef BERTH_CINIT_H
#define BERTH_CINIT_H
#include <stddef.h>
void berth_cinit(int sockfd, const char *plan, size_t len) __attribute__((noreturn));
#endif
