/*
 * Enforce mode, what the records say: a verdict's rule name, the armed policy in the start
 * record, the learned-map counters in the stop record, and the learned map's upkeep.
 */
#include <stdio.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "dpndncy.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "features/enforce_agent.h"
#include "features/enforce_state.h"
#include "enforce.h"
#include "connect.skel.h"

static const char *const fixed_rules[DP_R_USER] = {
	[DP_R_NONE] = "",
	[DP_R_DEFAULT_DENY] = "default-deny",
	[DP_R_METADATA] = "metadata",
	[DP_R_DNS_RESOLVER] = "dns-resolver",
	[DP_R_DOT] = "dot",
	[DP_R_DOH] = "doh",
	[DP_R_LOOPBACK] = "loopback",
	[DP_R_EXEMPT_CG] = "exempt-cgroup",
	[DP_R_EXEMPT_PID] = "exempt-process",
	[DP_R_RESOLVER] = "sanctioned-resolver",
	[DP_R_RAW_SOCKET] = "raw-socket",
	[DP_R_NO_JOB] = "exempt-no-job",
	[DP_R_DNS_BIND] = "dns-bind",
	[DP_R_SOCK_TYPE] = "socket-type",
	[DP_R_UNATTRIBUTED] = "unattributed",
};

const char *enforce_rule_name(uint16_t rule)
{
	if (rule < DP_R_USER)
		return fixed_rules[rule] ? fixed_rules[rule] : "unknown";
	if (rule - DP_R_USER < P.n)
		return P.e[rule - DP_R_USER].text;
	return "unknown";
}

void enforce_json(struct sbuf *b)
{
	int first = 1;

	sb_puts(b, "{\"cgroup\":");
	sb_json_cstr(b, P.cgroup);
	sb_printf(b, ",\"entries\":%d,\"allow_metadata\":%s,\"resolvers\":[", P.n, P.allow_metadata ? "true" : "false");
	for (int i = 0; i < P.nres; i++) {
		char a[64];
		int is4 = !memcmp(P.res[i], "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);

		fmt_addr(a, sizeof(a), is4 ? 2 : 10, is4 ? P.res[i] + 12 : P.res[i]);
		sb_printf(b, "%s\"%s\"", first ? "" : ",", a);
		first = 0;
	}
	sb_printf(b, "],\"resolvers_from\":\"%s\",\"exempt_pids\":[", P.res_from_conf ? "/etc/resolv.conf" : "config");
	for (int i = 0; i < P.nexempt; i++)
		sb_printf(b, "%s%u", i ? "," : "", P.exempt[i]);
	sb_puts(b, "]}");
}

uint32_t enforce_ttl_min(void)
{
	return P.ttl_min ? P.ttl_min : 120;
}

/* the sum over CPUs of the kernel's enforce counters (bpf/enforce.h struct dp_enf_stats) */
static int read_enf_stats(struct dp_enf_stats *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct dp_enf_stats *per;
	uint32_t zero = 0;

	memset(out, 0, sizeof(*out));
	if (!CONN || ncpu <= 0 || !(per = calloc((size_t)ncpu, sizeof(*per))))
		return -1;
	if (bpf_map_lookup_elem(bpf_map__fd(CONN->maps.enforce_stats), &zero, per) < 0) {
		free(per);
		return -1;
	}
	for (int i = 0; i < ncpu; i++) {
		out->learned += per[i].learned;
		out->learn_fail += per[i].learn_fail;
		out->dns_allowed += per[i].dns_allowed;
		out->dns_other += per[i].dns_other;
	}
	free(per);
	return 0;
}

/* remove the learned entries whose TTL ran out (the kernel already judges them absent) */
static void sweep_learned(void)
{
	int fd = bpf_map__fd(CONN->maps.learned);
	struct dp_learn_key cur, next, *del = NULL;
	struct dp_learn_val v;
	size_t n = 0, cap = 0;
	int have = 0;
	uint64_t now = now_boottime_ns();

	while (bpf_map_get_next_key(fd, have ? &cur : NULL, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &v) == 0 && v.expires <= now) {
			if (n == cap) {
				struct dp_learn_key *d = realloc(del, (cap ? cap * 2 : 256) * sizeof(*d));

				if (!d)
					break;
				del = d;
				cap = cap ? cap * 2 : 256;
			}
			del[n++] = next;
		}
		cur = next;
		have = 1;
	}
	for (size_t i = 0; i < n; i++)
		if (bpf_map_delete_elem(fd, &del[i]) == 0)
			P.expired++;
	free(del);
}

void enforce_tick(void)
{
	struct dp_enf_stats st;
	uint64_t now = now_boottime_ns();

	if (!CONN || read_enf_stats(&st) < 0)
		return;
	if (st.learn_fail > P.learn_fail_seen) {
		/* full: said once (and counted in the stop record), then room is made at once */
		if (!P.said_full)
			err_msg("enforce: learned map full: %llu address(es) from allowed names' DNS answers could not be "
				"learned, their connects are denied; expired entries are being removed",
				(unsigned long long)(st.learn_fail - P.learn_fail_seen));
		P.said_full = 1;
		P.learn_fail_seen = st.learn_fail;
		P.pressure_until = now + 60000000000ull;
	}
	/* every 30 s; every second for a minute after the map was found full (entries may expire any moment) */
	if (now >= P.next_sweep || now < P.pressure_until) {
		sweep_learned();
		P.next_sweep = now + 30000000000ull;
	}
}

void enforce_stats_json(struct sbuf *b)
{
	struct dp_enf_stats st;

	if (!CONN || read_enf_stats(&st) < 0)
		return;
	sb_printf(b, ",\"learned\":{\"inserted\":%llu,\"failed\":%llu,\"expired\":%llu}", (unsigned long long)st.learned,
		  (unsigned long long)st.learn_fail, (unsigned long long)P.expired);
}
