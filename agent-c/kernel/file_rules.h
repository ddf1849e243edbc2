/* The file rules' kernel filter (agent-c/kernel/file_rules.c). */
#ifndef DPNDNCY_KERNEL_FILE_RULES_H
#define DPNDNCY_KERNEL_FILE_RULES_H

#include <stddef.h>

struct config;

/* fill the kernel filter maps of the file object; 0 ok */
int config_push_file_rules(const struct config *c, int rules_fd, int cfg_fd, int allow_fd, char *errbuf, size_t errn);

#endif
