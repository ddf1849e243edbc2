/* Step attribution: step-marker, ci-identity; step id -> its name (agent-c/records/steps.c). */
#ifndef DPNDNCY_RECORDS_STEPS_H
#define DPNDNCY_RECORDS_STEPS_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct sbuf;

int steps_config_line(struct config *c, const char *line, const char *path, int lineno, char *errbuf, size_t errn);
int json_object_valid(const char *s, size_t n);
int steps_push_cfg(const struct config *c, int cfg_fd, char *errbuf, size_t errn);
void steps_start_json(const struct config *c, struct sbuf *b, int skip_ci);
void steps_set_names_fd(int fd);
const char *step_name(uint32_t id, size_t *n);

#endif
