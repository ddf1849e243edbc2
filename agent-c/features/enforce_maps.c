/*
 * Enforce mode, the kernel maps of bpf/enforce.inc.c: each slot's entries, the resolvers, the
 * metadata and DNS-over-HTTPS addresses, the exempt processes.
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

struct connect_bpf *CONN; /* the loaded connect object, once pushed */

static const char *const metadata_addrs[] = {"169.254.169.254", "169.254.170.2", "fd00:ec2::254"};

/* known DNS-over-HTTPS services: names (denied in the DNS path) and their well-known addresses */
static const struct {
	const char *name;
	const char *addrs[4];
} doh[] = {
	{"dns.google", {"8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844"}},
	{"cloudflare-dns.com", {"1.1.1.1", "1.0.0.1", "2606:4700:4700::1111", "2606:4700:4700::1001"}},
	{"one.one.one.one", {"1.1.1.1", "1.0.0.1", NULL, NULL}},
	{"mozilla.cloudflare-dns.com", {NULL, NULL, NULL, NULL}},
	{"dns.quad9.net", {"9.9.9.9", "149.112.112.112", "2620:fe::fe", "2620:fe::9"}},
	{"doh.opendns.com", {"208.67.222.222", "208.67.220.220", NULL, NULL}},
	{"dns.adguard-dns.com", {"94.140.14.14", "94.140.15.15", NULL, NULL}},
	{"dns.nextdns.io", {NULL, NULL, NULL, NULL}},
};

/* ---- maps ---- */

static void resolv_conf_defaults(void)
{
	char *s = read_file_str("/etc/resolv.conf", 65536), *line, *save = NULL;
	char err[128];

	if (!s)
		return;
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char a[128];

		if (sscanf(line, " nameserver %127s", a) == 1) {
			char *pct = strchr(a, '%'); /* fe80::1%eth0 */

			if (pct)
				*pct = 0;
			if (add_resolver(a, err, sizeof(err)) == 0)
				P.res_from_conf = 1;
		}
	}
	free(s);
}

/* name reversed for the trie; exact names end with their NUL */
static void name_key(struct dp_name_key *k, uint32_t slot, const char *name, int exact)
{
	size_t n = strlen(name);

	memset(k, 0, sizeof(*k));
	k->slot = slot;
	for (size_t i = 0; i < n; i++)
		k->name[i] = (uint8_t)name[n - 1 - i];
	if (!exact)
		k->name[n] = '.';
	k->prefixlen = DP_SLOT_BITS + (uint32_t)(n + 1) * 8;
}

/* does a suffix entry's domain cover name (a strict subdomain)? */
static int covers(const char *domain, const char *name)
{
	size_t dl = strlen(domain), nl = strlen(name);

	return nl > dl + 1 && name[nl - dl - 1] == '.' && !strcmp(name + nl - dl, domain);
}

/* ports a name entry gets: its own, plus those of every wildcard that also matches it */
static int name_ports(int idx, struct dp_name_val *v, char *errbuf, size_t errn)
{
	const struct entry *e = &P.e[idx];
	int any = 0;

	v->nports = 0;
	v->flags = 0;
	for (int i = 0; i < P.n; i++) {
		const struct entry *o = &P.e[i];
		int match;

		if (o->kind == E_CIDR || !o->live || o->slot != e->slot)
			continue;
		if (o->kind == e->kind && !strcmp(o->name, e->name))
			match = 1;
		else if (o->kind == E_SUFFIX)
			match = covers(o->name, e->name) ;
		else
			match = 0;
		if (!match)
			continue;
		if (!o->port) {
			any = 1;
			continue;
		}
		{
			int dup = 0;

			for (int j = 0; j < v->nports; j++)
				if (v->ports[j] == o->port)
					dup = 1;
			if (dup)
				continue;
		}
		if (v->nports >= DP_ENF_PORTS) {
			snprintf(errbuf, errn, "enforce: more than %d ports for %s%s", DP_ENF_PORTS,
				 e->kind == E_SUFFIX ? "*." : "", e->name);
			return -1;
		}
		v->ports[v->nports++] = o->port;
	}
	if (any)
		v->flags |= DP_NV_ANY;
	return 0;
}

static int explicitly_allowed_name(int slot, const char *name)
{
	for (int i = 0; i < P.n; i++)
		if (P.e[i].live && P.e[i].slot == slot && P.e[i].kind == E_HOST && !strcmp(P.e[i].name, name))
			return 1;
	return 0;
}

static int explicitly_allowed_addr(int slot, const uint8_t a[16])
{
	for (int i = 0; i < P.n; i++)
		if (P.e[i].live && P.e[i].slot == slot && P.e[i].kind == E_CIDR && P.e[i].prefix == 128 &&
		    !memcmp(P.e[i].addr, a, 16))
			return 1;
	return 0;
}

#define PUT(fd, k, v, what)                                                                       \
	do {                                                                                      \
		if (bpf_map_update_elem(fd, k, v, BPF_NOEXIST) < 0 && errno != EEXIST) {          \
			snprintf(errbuf, errn, "enforce: cannot fill %s: %s", what, strerror(errno)); \
			return -1;                                                                \
		}                                                                                 \
	} while (0)

/* the kernel entries of one slot: its allow entries, and metadata / DoH denials */
/* ks: the slot number the kernel keys carry (the slot's current generation, see enforce_apply) */
int push_slot(struct connect_bpf *conn, int slot, uint32_t ks, char *errbuf, size_t errn)
{
	int fd_any = bpf_map__fd(conn->maps.allow_any), fd_port = bpf_map__fd(conn->maps.allow_port);
	int fd_names = bpf_map__fd(conn->maps.names), fd_deny = bpf_map__fd(conn->maps.deny_addr);
	int has_names = 0;

	for (int i = 0; i < P.n; i++) {
		const struct entry *e = &P.e[i];
		struct dp_enf_val v = {.rule = (uint16_t)(DP_R_USER + i)};

		if (!e->live || e->slot != slot)
			continue;
		P.e[i].in_kernel = 1; /* until purge_slot(ks) */
		P.e[i].kgen = ks;
		if (e->kind == E_CIDR) {
			if (e->port) {
				struct dp_lpm_port k = {.prefixlen = DP_SLOT_BITS + 16 + (uint32_t)e->prefix,
							.slot = ks};
				uint16_t pbe = htons(e->port);

				memcpy(k.port, &pbe, 2);
				memcpy(k.addr, e->addr, 16);
				PUT(fd_port, &k, &v, "allow_port");
			} else {
				struct dp_lpm_any k = {.prefixlen = DP_SLOT_BITS + (uint32_t)e->prefix, .slot = ks};

				memcpy(k.addr, e->addr, 16);
				PUT(fd_any, &k, &v, "allow_any");
			}
		} else {
			struct dp_name_key k;
			struct dp_name_val nv;

			memset(&nv, 0, sizeof(nv));
			nv.rule = (uint16_t)(DP_R_USER + i);
			if (name_ports(i, &nv, errbuf, errn) < 0)
				return -1;
			name_key(&k, ks, e->name, e->kind == E_HOST);
			PUT(fd_names, &k, &nv, "names");
			has_names = 1;
		}
	}
	if (has_names && P.nres == 0) {
		snprintf(errbuf, errn,
			 "enforce: allowed names need a sanctioned DNS resolver: none in /etc/resolv.conf, add dns-resolver IP");
		return -1;
	}
	if (!P.allow_metadata) {
		for (size_t i = 0; i < sizeof(metadata_addrs) / sizeof(metadata_addrs[0]); i++) {
			struct dp_enf_val v = {.rule = DP_R_METADATA};
			struct dp_deny_key k = {.slot = ks};
			int is4;

			parse_ip16(metadata_addrs[i], k.addr, &is4);
			PUT(fd_deny, &k, &v, "deny_addr");
		}
	}
	for (size_t i = 0; i < sizeof(doh) / sizeof(doh[0]); i++) {
		int name_ok = explicitly_allowed_name(slot, doh[i].name);

		if (!name_ok) {
			struct dp_name_key k;
			struct dp_name_val nv;

			memset(&nv, 0, sizeof(nv));
			nv.rule = DP_R_DOH;
			nv.flags = DP_NV_DENY;
			name_key(&k, ks, doh[i].name, 1);
			PUT(fd_names, &k, &nv, "names");
		}
		for (int j = 0; j < 4 && doh[i].addrs[j]; j++) {
			struct dp_enf_val v = {.rule = DP_R_DOH};
			struct dp_deny_key k = {.slot = ks};
			int is4;

			parse_ip16(doh[i].addrs[j], k.addr, &is4);
			/* a sanctioned resolver stays reachable on port 53 (judged before deny_addr) */
			if (name_ok || explicitly_allowed_addr(slot, k.addr))
				continue;
			PUT(fd_deny, &k, &v, "deny_addr");
		}
	}
	return 0;
}


/* field 22 of /proc/<pid>/stat: the start time in clock ticks since boot (what the kernel compares) */
static int proc_start_ticks(uint32_t pid, uint64_t *out)
{
	char path[64], *s, *p;
	int field = 2;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	s = read_file_str(path, 4096);
	if (!s)
		return -1;
	p = strrchr(s, ')'); /* comm may hold spaces and parentheses */
	if (!p) {
		free(s);
		return -1;
	}
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || *p < '0' || *p > '9') {
		free(s);
		return -1;
	}
	*out = strtoull(p, NULL, 10);
	free(s);
	return 0;
}

int enforce_push(struct connect_bpf *conn, char *errbuf, size_t errn)
{
	int fd_res = bpf_map__fd(conn->maps.resolvers), fd_ex = bpf_map__fd(conn->maps.exempt);
	uint8_t one = 1;

	CONN = conn;
	if (P.nres == 0)
		resolv_conf_defaults();
	for (int i = 0; i < P.nres; i++)
		PUT(fd_res, P.res[i], &one, "resolvers");
	for (int i = 0; i < P.nexempt; i++) {
		uint64_t start;

		if (proc_start_ticks(P.exempt[i], &start) < 0) {
			snprintf(errbuf, errn, "enforce: exempt-pid %u: no such process (an exempt pid must be running at start)",
				 P.exempt[i]);
			return -1;
		}
		PUT(fd_ex, &P.exempt[i], &start, "exempt");
	}
	for (int s = 0; s < MAX_SLOTS; s++)
		P.phys[s] = (uint32_t)s; /* generation 0 of slot s */
	P.next_phys = MAX_SLOTS;
	if (push_slot(conn, 0, P.phys[0], errbuf, errn) < 0)
		return -1;
	for (int s = 1; s < P.nslots; s++)
		if (P.slots[s].used && push_slot(conn, s, P.phys[s], errbuf, errn) < 0)
			return -1;
	for (int s = 0; s < P.nslots; s++)
		P.slots[s].dirty = 0;
	push_ident(conn);
	return 0;
}
