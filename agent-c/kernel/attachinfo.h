/* Which hook each kind of record comes from, as the start record and daemon-start name it
 * (agent-c/kernel/attachinfo.c); bpfload.c fills it while it attaches. */
#ifndef DPNDNCY_KERNEL_ATTACHINFO_H
#define DPNDNCY_KERNEL_ATTACHINFO_H

struct sbuf;

struct attach_info {
	char exec[128], exitp[128], fork[128], connect[160], connect_result[128];
	char file[128], dns[160], dns_packet[128];
	char tamper[256];      /* filled after integrity_start (as long as integrity.c's tamper_attach) */
};

/* {"exec":..,"connect":..,…}: what is attached where */
void attach_json(const struct attach_info *ai, struct sbuf *b);

#endif
