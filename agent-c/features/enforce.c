/*
 * Enforce mode: the egress policy from the config file, the job cgroup, and the
 * kernel maps of bpf/enforce.bpf.h.
 *
 * Config directives (agent-c/README.md):
 *   allow-host NAME[:PORT]        exact DNS name (also "*.DOMAIN[:PORT]" = allow-suffix)
 *   allow-suffix DOMAIN[:PORT]    every name below DOMAIN (not DOMAIN itself)
 *   allow-cidr CIDR[:PORT]        IPv4/IPv6 address or prefix; IPv6 with a port: [2001:db8::/32]:443
 *   dns-resolver IP               sanctioned resolver (repeatable); default: /etc/resolv.conf
 *   allow-metadata                do not block the cloud metadata addresses
 *   learned-ttl-min SECONDS       addresses from a DNS answer stay allowed for its TTL, at least
 *                                 this long (default 120)
 *   exempt-pid PID                a process inside the enforced cgroup that is not judged
 *                                 (the CI runner's own worker); its children are judged. It
 *                                 must be running at start: the kernel matches its pid AND its
 *                                 start time, so a later process with the same pid is judged
 *
 * Names become addresses only through DNS answers from a sanctioned resolver that reach a
 * process of the enforced cgroup (the kernel learns them before the answer is delivered).
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
#include "enforce.h"
#include "connect.skel.h"

/* entries of every policy, over every reload (rule ids stay stable: a reload appends) */
#define MAX_ENTRIES 16384
#define MAX_RESOLVERS 16
#define MAX_EXEMPT 32
#define MAX_SLOTS 256

enum ent_kind { E_HOST, E_SUFFIX, E_CIDR };

struct entry {
	enum ent_kind kind;
	char name[256];        /* host / suffix, lower case, no trailing dot */
	uint8_t addr[16];      /* cidr: mapped form for IPv4 */
	int prefix;            /* cidr: bits over the 16-byte form */
	uint16_t port;         /* 0 = any */
	uint16_t slot;         /* the policy it belongs to (0: the config file / default.conf) */
	uint8_t live;          /* 0: replaced by a reload (kept so old rule ids keep their names) */
	uint8_t from_dir;      /* read from the policy directory (replaced when its file changes) */
	char text[300];        /* rule name as reported */
};

/* daemon mode: a policy file of the policy directory is a slot; slot 0 is the default */
struct slot {
	char rel[512];         /* path relative to the policy dir ("" = unused, "default.conf" for 0) */
	uint64_t hash;         /* of the file's bytes: an unchanged file keeps its entries */
	int used;
	int dirty;             /* kernel entries must be replaced */
	int seen;              /* present in the directory read now */
};

static struct {
	int n;
	struct entry e[MAX_ENTRIES];
	int nres;
	uint8_t res[MAX_RESOLVERS][16];
	int res_from_conf;
	int allow_metadata;
	int nexempt;
	uint32_t exempt[MAX_EXEMPT];
	int directives;
	uint32_t ttl_min;      /* learned-ttl-min (0: the default, 120 s) */
	uint64_t learn_fail_seen, expired; /* enforce_tick: map-full failures already said, entries removed */
	uint64_t next_sweep, pressure_until;
	int said_full;
	int cur_slot;          /* slot new entries go to */
	int nslots;
	struct slot slots[MAX_SLOTS];
	/*
	 * The kernel keys of slot s carry phys[s], its current generation. A reload pushes a
	 * slot's new entries under a fresh number, then points the slot's jobs at it (one map write
	 * per job, so each job sees the old policy or the new one, whole), then purges the old
	 * number: no window without entries, and a learner still working from the old names can only
	 * add to a generation no job uses any more. Numbers are not reused.
	 */
	uint32_t phys[MAX_SLOTS];
	uint32_t next_phys;
	/* job cgroup */
	const char *want_cgroup;
	char cgroup[4096];
	int created;
} P; /* zero-initialised on purpose: a non-zero initialiser would put its ~2.4 MB in .data */

static int cg_fd = -1; /* the job cgroup, once opened */
static struct connect_bpf *CONN; /* the loaded connect object, once pushed */

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

int policy_entries(void)
{
	return P.n;
}

/* ---- parsing ---- */

static int parse_ip16(const char *s, uint8_t out[16], int *is4)
{
	struct in_addr a4;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		*is4 = 1;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*is4 = 0;
		return 0;
	}
	return -1;
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5)
		return -1;
	v = strtoul(s, &end, 10);
	if (v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int label_ok(const char *l, size_t n)
{
	if (n < 1 || n > 63 || l[0] == '-' || l[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = l[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* lower-cased, validated DNS name (no wildcard) into out; NULL ok, else why */
static const char *name_check(const char *in, size_t len, char *out, size_t outn)
{
	size_t i, start = 0;

	if (len == 0)
		return "empty name";
	if (len >= outn || len > 253)
		return "name longer than 253 bytes";
	for (i = 0; i < len; i++)
		out[i] = (char)((in[i] >= 'A' && in[i] <= 'Z') ? in[i] + 32 : in[i]);
	out[len] = 0;
	if (len && out[len - 1] == '.')
		out[--len] = 0;
	if (strchr(out, '*'))
		return "'*' is only allowed as a leading \"*.\" label";
	for (i = 0; i <= len; i++) {
		if (i == len || out[i] == '.') {
			if (!label_ok(out + start, i - start))
				return "not a valid DNS name (labels: a-z 0-9 - _, 1-63 bytes, no leading or trailing -)";
			start = i + 1;
		}
	}
	if (len >= DP_ENF_NAME)
		return "names of 128 bytes or more cannot be matched in the kernel";
	return NULL;
}

static struct entry *new_entry(char *errbuf, size_t errn)
{
	if (P.n >= MAX_ENTRIES) {
		snprintf(errbuf, errn, "too many allow entries (max %d)", MAX_ENTRIES);
		return NULL;
	}
	memset(&P.e[P.n], 0, sizeof(P.e[0]));
	P.e[P.n].slot = (uint16_t)P.cur_slot;
	P.e[P.n].live = 1;
	P.e[P.n].from_dir = P.cur_slot != 0 || P.nslots > 0;
	return &P.e[P.n++];
}

static int add_name(const char *arg, int suffix, char *errbuf, size_t errn)
{
	char host[300];
	const char *colon, *why;
	uint16_t port = 0;
	size_t hl;
	struct entry *e;

	snprintf(host, sizeof(host), "%s", arg);
	colon = strchr(host, ':');
	if (colon) {
		if (parse_port(colon + 1, &port) < 0) {
			snprintf(errbuf, errn, "invalid port in \"%s\" (1-65535)", arg);
			return -1;
		}
		hl = (size_t)(colon - host);
	} else {
		hl = strlen(host);
	}
	if (!suffix && hl >= 2 && host[0] == '*' && host[1] == '.') {
		suffix = 1;
		memmove(host, host + 2, strlen(host + 2) + 1);
		hl -= 2;
	}
	e = new_entry(errbuf, errn);
	if (!e)
		return -1;
	why = name_check(host, hl, e->name, sizeof(e->name));
	if (why) {
		P.n--;
		snprintf(errbuf, errn, "invalid name \"%s\": %s", arg, why);
		return -1;
	}
	if (suffix && !strchr(e->name, '.')) {
		P.n--;
		snprintf(errbuf, errn, "invalid name \"%s\": a wildcard needs a domain with at least two labels", arg);
		return -1;
	}
	e->kind = suffix ? E_SUFFIX : E_HOST;
	e->port = port;
	if (port)
		snprintf(e->text, sizeof(e->text), "%s %s%s:%u", suffix ? "allow-suffix" : "allow-host",
			 suffix ? "*." : "", e->name, port);
	else
		snprintf(e->text, sizeof(e->text), "%s %s%s", suffix ? "allow-suffix" : "allow-host",
			 suffix ? "*." : "", e->name);
	return 0;
}

static int add_cidr(const char *arg, char *errbuf, size_t errn)
{
	char s[300], *slash, *portp = NULL;
	uint16_t port = 0;
	int is4, prefix;
	struct entry *e;

	snprintf(s, sizeof(s), "%s", arg);
	if (s[0] == '[') {
		char *rb = strchr(s, ']');

		if (!rb || (rb[1] && rb[1] != ':')) {
			snprintf(errbuf, errn, "invalid CIDR \"%s\" (IPv6 with a port: [2001:db8::/32]:443)", arg);
			return -1;
		}
		*rb = 0;
		if (rb[1] == ':')
			portp = rb + 2;
		memmove(s, s + 1, strlen(s + 1) + 1);
	} else {
		char *c1 = strchr(s, ':');

		if (c1 && !strchr(c1 + 1, ':')) { /* exactly one colon: IPv4:PORT */
			*c1 = 0;
			portp = c1 + 1;
		}
	}
	if (portp && parse_port(portp, &port) < 0) {
		snprintf(errbuf, errn, "invalid port in \"%s\" (1-65535)", arg);
		return -1;
	}
	slash = strchr(s, '/');
	if (slash)
		*slash = 0;
	e = new_entry(errbuf, errn);
	if (!e)
		return -1;
	if (parse_ip16(s, e->addr, &is4) < 0) {
		P.n--;
		snprintf(errbuf, errn, "invalid CIDR \"%s\": \"%s\" is not an IPv4 or IPv6 address", arg, s);
		return -1;
	}
	prefix = is4 ? 32 : 128;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);

		if (!slash[1] || *end || v < 0 || v > prefix) {
			P.n--;
			snprintf(errbuf, errn, "invalid CIDR \"%s\": prefix length must be 0-%d", arg, prefix);
			return -1;
		}
		prefix = (int)v;
	}
	e->kind = E_CIDR;
	e->prefix = is4 ? 96 + prefix : prefix;
	/* host bits must be zero: 192.0.2.1/24 is almost always a typo */
	for (int b = e->prefix; b < 128; b++) {
		if (e->addr[b / 8] & (0x80 >> (b % 8))) {
			P.n--;
			snprintf(errbuf, errn, "invalid CIDR \"%s\": host bits set (did you mean the network address?)", arg);
			return -1;
		}
	}
	e->port = port;
	{
		char a[64];

		inet_ntop(is4 ? AF_INET : AF_INET6, is4 ? (void *)(e->addr + 12) : (void *)e->addr, a, sizeof(a));
		if (port)
			snprintf(e->text, sizeof(e->text), is4 ? "allow-cidr %s/%d:%u" : "allow-cidr [%s/%d]:%u", a,
				 prefix, port);
		else
			snprintf(e->text, sizeof(e->text), "allow-cidr %s/%d", a, prefix);
	}
	return 0;
}

static int add_resolver(const char *s, char *errbuf, size_t errn)
{
	uint8_t a[16];
	int is4;

	if (parse_ip16(s, a, &is4) < 0) {
		snprintf(errbuf, errn, "invalid resolver address \"%s\"", s);
		return -1;
	}
	for (int i = 0; i < P.nres; i++)
		if (!memcmp(P.res[i], a, 16))
			return 0;
	if (P.nres >= MAX_RESOLVERS) {
		snprintf(errbuf, errn, "too many DNS resolvers (max %d)", MAX_RESOLVERS);
		return -1;
	}
	memcpy(P.res[P.nres++], a, 16);
	return 0;
}

int policy_config_line(char **tok, int n, char *errbuf, size_t errn)
{
	const char *d = tok[0];
	int takes_arg;

	if (!strcmp(d, "allow-host") || !strcmp(d, "allow-suffix") || !strcmp(d, "allow-cidr") ||
	    !strcmp(d, "dns-resolver") || !strcmp(d, "exempt-pid") || !strcmp(d, "learned-ttl-min"))
		takes_arg = 1;
	else if (!strcmp(d, "allow-metadata"))
		takes_arg = 0;
	else
		return 0;
	if (n != 1 + takes_arg) {
		snprintf(errbuf, errn, "wrong number of arguments for '%s'", d);
		return -1;
	}
	P.directives++;
	if (!strcmp(d, "allow-host"))
		return add_name(tok[1], 0, errbuf, errn) < 0 ? -1 : 1;
	if (!strcmp(d, "allow-suffix")) {
		const char *a = tok[1];

		if (a[0] == '*' && a[1] == '.')
			a += 2;
		return add_name(a, 1, errbuf, errn) < 0 ? -1 : 1;
	}
	if (!strcmp(d, "allow-cidr"))
		return add_cidr(tok[1], errbuf, errn) < 0 ? -1 : 1;
	if (!strcmp(d, "dns-resolver"))
		return add_resolver(tok[1], errbuf, errn) < 0 ? -1 : 1;
	if (!strcmp(d, "learned-ttl-min")) {
		char *end;
		long v = strtol(tok[1], &end, 10);

		if (!tok[1][0] || *end || v < 1 || v > 604800) {
			snprintf(errbuf, errn, "learned-ttl-min needs seconds between 1 and 604800");
			return -1;
		}
		P.ttl_min = (uint32_t)v;
		return 1;
	}
	if (!strcmp(d, "exempt-pid")) {
		char *end;
		long v = strtol(tok[1], &end, 10);

		if (!tok[1][0] || *end || v <= 1 || v > 0x3fffffff) {
			snprintf(errbuf, errn, "exempt-pid needs a process id greater than 1");
			return -1;
		}
		if (P.nexempt >= MAX_EXEMPT) {
			snprintf(errbuf, errn, "too many exempt-pid (max %d)", MAX_EXEMPT);
			return -1;
		}
		P.exempt[P.nexempt++] = (uint32_t)v;
		return 1;
	}
	P.allow_metadata = 1;
	return 1;
}

/* ---- the job cgroup ---- */

void enforce_set_cgroup(const char *path)
{
	P.want_cgroup = path;
}

const char *enforce_cgroup_path(void)
{
	return P.cgroup;
}

int enforce_cgroup_fd(void)
{
	return cg_fd;
}

int enforce_prepare(const char *root, char *errbuf, size_t errn)
{
	struct statfs sf;
	struct stat st, rst;

	if (P.want_cgroup) {
		if (P.want_cgroup[0] == '/')
			snprintf(P.cgroup, sizeof(P.cgroup), "%s", P.want_cgroup);
		else
			snprintf(P.cgroup, sizeof(P.cgroup), "%s/%s", root, P.want_cgroup);
	} else {
		snprintf(P.cgroup, sizeof(P.cgroup), "%s/dpndncy-%d", root, (int)getpid());
		if (mkdir(P.cgroup, 0755) < 0) {
			snprintf(errbuf, errn, "enforce: cannot create cgroup %s: %s", P.cgroup, strerror(errno));
			P.cgroup[0] = 0;
			return -1;
		}
		P.created = 1;
	}
	if (statfs(P.cgroup, &sf) < 0 || stat(P.cgroup, &st) < 0) {
		snprintf(errbuf, errn, "enforce: cgroup %s: %s", P.cgroup, strerror(errno));
		goto fail;
	}
	if (sf.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode)) {
		snprintf(errbuf, errn, "enforce: %s is not a cgroup v2 directory", P.cgroup);
		goto fail;
	}
	/* never the root: a default-deny there would cut the whole machine off */
	if (stat(root, &rst) == 0 && rst.st_ino == st.st_ino && rst.st_dev == st.st_dev) {
		snprintf(errbuf, errn, "enforce: refusing to enforce on the cgroup v2 root %s", P.cgroup);
		goto fail;
	}
	if (st.st_ino == 1) {
		snprintf(errbuf, errn, "enforce: refusing to enforce on a cgroup v2 root (%s)", P.cgroup);
		goto fail;
	}
	cg_fd = open(P.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		snprintf(errbuf, errn, "enforce: cannot open cgroup %s: %s", P.cgroup, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	enforce_cleanup();
	return -1;
}

int enforce_join(char *errbuf, size_t errn)
{
	char path[4200], pid[32];
	int fd, n;
	ssize_t w;

	snprintf(path, sizeof(path), "%s/cgroup.procs", P.cgroup);
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(errbuf, errn, "enforce: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	w = write(fd, pid, (size_t)n);
	if (w != n) {
		snprintf(errbuf, errn, "enforce: cannot move into cgroup %s: %s", P.cgroup, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* move every process still in cg to its parent cgroup, then remove cg */
static void remove_cgroup(const char *cg)
{
	char path[4200], parent[4200], *s, *line, *save = NULL, *slash;

	if (rmdir(cg) == 0 || errno == ENOENT)
		return;
	snprintf(parent, sizeof(parent), "%s", cg);
	slash = strrchr(parent, '/');
	if (!slash)
		return;
	*slash = 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	s = read_file_str(path, 1 << 20);
	if (s) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", parent);
		for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			int fd = open(path, O_WRONLY | O_CLOEXEC);

			if (fd >= 0) {
				if (write(fd, line, strlen(line)) < 0) {
					/* gone meanwhile */
				}
				close(fd);
			}
		}
		free(s);
	}
	for (int i = 0; i < 20 && rmdir(cg) < 0 && errno == EBUSY; i++)
		usleep(10000);
}

void enforce_cleanup(void)
{
	if (cg_fd >= 0) {
		close(cg_fd);
		cg_fd = -1;
	}
	if (P.created && P.cgroup[0])
		remove_cgroup(P.cgroup);
	P.created = 0;
}

void enforce_write_state(const char *dir)
{
	char path[4200], buf[4200];
	int n;

	if (!P.cgroup[0])
		return;
	snprintf(path, sizeof(path), "%s/enforce", dir);
	n = snprintf(buf, sizeof(buf), "cgroup=%s\ncreated=%d\n", P.cgroup, P.created);
	write_file(path, buf, (size_t)n);
}

void enforce_recover(const char *dir)
{
	char path[4200], *s, *c, *nl;

	snprintf(path, sizeof(path), "%s/enforce", dir);
	s = read_file_str(path, 8192);
	if (!s)
		return;
	c = strstr(s, "cgroup=");
	if (c && strstr(s, "created=1")) {
		c += 7;
		nl = strchr(c, '\n');
		if (nl)
			*nl = 0;
		if (strncmp(c, "/", 1) == 0 && strstr(c, "/dpndncy-"))
			remove_cgroup(c);
	}
	free(s);
	unlink(path);
}

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
static int push_slot(struct connect_bpf *conn, int slot, uint32_t ks, char *errbuf, size_t errn)
{
	int fd_any = bpf_map__fd(conn->maps.allow_any), fd_port = bpf_map__fd(conn->maps.allow_port);
	int fd_names = bpf_map__fd(conn->maps.names), fd_deny = bpf_map__fd(conn->maps.deny_addr);
	int has_names = 0;

	for (int i = 0; i < P.n; i++) {
		const struct entry *e = &P.e[i];
		struct dp_enf_val v = {.rule = (uint16_t)(DP_R_USER + i)};

		if (!e->live || e->slot != slot)
			continue;
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

static void push_ident(struct connect_bpf *conn);

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

/* ---- daemon mode: the policy directory (docs/daemon.md) ---- */

/* remove every key of `slot` from a map whose keys carry the slot at byte offset off */
static void purge_map(int fd, size_t keysz, size_t off, uint32_t slot)
{
	uint8_t next[sizeof(struct dp_name_key)], cur[sizeof(struct dp_name_key)];
	uint8_t *del = NULL;
	size_t ndel = 0, cap = 0;
	int have = 0;

	if (fd < 0 || keysz > sizeof(next))
		return;
	/* collect first: deleting while iterating would restart the walk */
	while (bpf_map_get_next_key(fd, have ? cur : NULL, next) == 0) {
		uint32_t ks;

		memcpy(&ks, next + off, 4);
		if (ks == slot) {
			if (ndel == cap) {
				uint8_t *n = realloc(del, (cap ? cap * 2 : 64) * keysz);

				if (!n)
					break;
				del = n;
				cap = cap ? cap * 2 : 64;
			}
			memcpy(del + ndel * keysz, next, keysz);
			ndel++;
		}
		memcpy(cur, next, keysz);
		have = 1;
	}
	for (size_t i = 0; i < ndel; i++)
		bpf_map_delete_elem(fd, del + i * keysz);
	free(del);
}

static void purge_slot(struct connect_bpf *conn, uint32_t slot)
{
	purge_map(bpf_map__fd(conn->maps.allow_any), sizeof(struct dp_lpm_any), offsetof(struct dp_lpm_any, slot), slot);
	purge_map(bpf_map__fd(conn->maps.allow_port), sizeof(struct dp_lpm_port), offsetof(struct dp_lpm_port, slot), slot);
	purge_map(bpf_map__fd(conn->maps.names), sizeof(struct dp_name_key), offsetof(struct dp_name_key, slot), slot);
	purge_map(bpf_map__fd(conn->maps.deny_addr), sizeof(struct dp_deny_key), offsetof(struct dp_deny_key, slot), slot);
	purge_map(bpf_map__fd(conn->maps.learned), sizeof(struct dp_learn_key), offsetof(struct dp_learn_key, slot), slot);
}

static uint64_t fnv64(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 0x100000001b3ULL;
	return h;
}

static int slot_by_rel(const char *rel)
{
	for (int i = 1; i < P.nslots; i++)
		if (P.slots[i].used && !strcmp(P.slots[i].rel, rel))
			return i;
	return -1;
}

/* parse one policy file into P.cur_slot; only allow-* lines (the rest is host-wide) */
static int parse_policy_file(const char *path, const char *text, char *errbuf, size_t errn)
{
	char *copy = strdup(text), *line, *p;
	int lineno = 0;

	if (!copy) {
		snprintf(errbuf, errn, "%s: out of memory", path);
		return -1;
	}
	/* strtok_r would skip empty lines and lose the line numbers: walk by hand */
	for (line = copy; line; line = p) {
		char *tok[4] = {0}, *tsave = NULL, *t, *hash, err[300];
		int n = 0, r;

		p = strchr(line, '\n');
		if (p)
			*p++ = 0;
		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		for (t = strtok_r(line, " \t\r", &tsave); t; t = strtok_r(NULL, " \t\r", &tsave)) {
			if (n == 4) {
				n++;
				break;
			}
			tok[n++] = t;
		}
		if (n == 0)
			continue;
		if (n > 4 || (strcmp(tok[0], "allow-host") && strcmp(tok[0], "allow-suffix") && strcmp(tok[0], "allow-cidr"))) {
			snprintf(errbuf, errn, "%s:%d: only allow-host, allow-suffix and allow-cidr belong in a job policy "
				 "(resolvers, metadata and exempt pids are host-wide: the daemon's --config)", path, lineno);
			free(copy);
			return -1;
		}
		r = policy_config_line(tok, n, err, sizeof(err));
		if (r < 0) {
			snprintf(errbuf, errn, "%s:%d: %s", path, lineno, err);
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

struct found {
	char rel[512];
};

/* every *.conf below dir (relative paths), depth-limited; -1 on a read error */
static int find_confs(const char *dir, const char *rel, struct found *out, int *n, int max, int depth,
		      char *errbuf, size_t errn)
{
	char path[4200];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s%s%s", dir, rel[0] ? "/" : "", rel);
	d = opendir(path);
	if (!d) {
		snprintf(errbuf, errn, "policy directory %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		char sub[600];
		struct stat st;
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue; /* also the supervisor's temporary trees */
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, sub);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth < 8 && find_confs(dir, sub, out, n, max, depth + 1, errbuf, errn) < 0) {
				closedir(d);
				return -1;
			}
		} else if (S_ISREG(st.st_mode) && l > 5 && !strcmp(de->d_name + l - 5, ".conf")) {
			if (*n >= max) {
				snprintf(errbuf, errn, "policy directory %s: more than %d policies", dir, max - 1);
				closedir(d);
				return -1;
			}
			snprintf(out[(*n)++].rel, sizeof(out[0].rel), "%s", sub);
		}
	}
	closedir(d);
	return 0;
}

int enforce_load_dir(const char *dir, int *changed, char *errbuf, size_t errn)
{
	static struct found f[MAX_SLOTS];
	static struct slot saved[MAX_SLOTS];
	int nf = 0, old_n = P.n, old_nslots = P.nslots ? P.nslots : 1, nchanged = 0;
	uint8_t live_before[MAX_ENTRIES / 8 + 1];

	if (changed)
		*changed = 0;
	if (find_confs(dir, "", f, &nf, MAX_SLOTS, 0, errbuf, errn) < 0)
		return -1;
	memcpy(saved, P.slots, sizeof(saved));
	for (int i = 0; i < P.n; i++)
		live_before[i / 8] = (uint8_t)((live_before[i / 8] & ~(1 << (i % 8))) | (P.e[i].live << (i % 8)));
	if (P.nslots == 0) {
		P.nslots = 1;
		snprintf(P.slots[0].rel, sizeof(P.slots[0].rel), "default.conf");
		P.slots[0].used = 1;
	}
	for (int i = 0; i < P.nslots; i++)
		P.slots[i].seen = 0;
	P.slots[0].seen = 1;
	for (int i = 0; i < nf; i++) {
		char path[4200], *text;
		uint64_t h;
		int slot;

		snprintf(path, sizeof(path), "%s/%s", dir, f[i].rel);
		text = read_file_str(path, 1 << 20);
		if (!text) {
			snprintf(errbuf, errn, "%s: %s", path, strerror(errno ? errno : EIO));
			goto fail;
		}
		h = fnv64(text, strlen(text));
		slot = !strcmp(f[i].rel, "default.conf") ? 0 : slot_by_rel(f[i].rel);
		if (slot < 0) {
			for (slot = 1; slot < P.nslots && P.slots[slot].used; slot++)
				;
			if (slot >= MAX_SLOTS) {
				free(text);
				snprintf(errbuf, errn, "policy directory %s: more than %d policies", dir, MAX_SLOTS - 1);
				goto fail;
			}
			if (slot == P.nslots)
				P.nslots++;
			memset(&P.slots[slot], 0, sizeof(P.slots[slot]));
			snprintf(P.slots[slot].rel, sizeof(P.slots[slot].rel), "%s", f[i].rel);
			P.slots[slot].used = 1;
			P.slots[slot].hash = h ^ 1; /* new: differs */
		}
		P.slots[slot].seen = 1;
		if (P.slots[slot].hash != h) {
			/* changed: the file's old entries stop counting, the new ones are appended */
			for (int e = 0; e < old_n; e++)
				if (P.e[e].slot == slot && P.e[e].from_dir)
					P.e[e].live = 0;
			P.cur_slot = slot;
			if (parse_policy_file(path, text, errbuf, errn) < 0) {
				free(text);
				goto fail;
			}
			P.slots[slot].hash = h;
			P.slots[slot].dirty = 1;
			nchanged++;
		}
		free(text);
	}
	/* files gone: their slots go, and so does a default.conf that was removed */
	for (int i = 0; i < P.nslots; i++) {
		if (P.slots[i].seen || !P.slots[i].used)
			continue;
		for (int e = 0; e < old_n; e++)
			if (P.e[e].slot == i && P.e[e].from_dir)
				P.e[e].live = 0;
		P.slots[i].used = 0;
		P.slots[i].dirty = 1;
		nchanged++;
	}
	{
		int has_default = 0;

		for (int i = 0; i < nf; i++)
			if (!strcmp(f[i].rel, "default.conf"))
				has_default = 1;
		if (!has_default && saved[0].hash) {
			for (int e = 0; e < old_n; e++)
				if (P.e[e].slot == 0 && P.e[e].from_dir)
					P.e[e].live = 0;
			P.slots[0].hash = 0;
			P.slots[0].dirty = 1;
			nchanged++;
		}
	}
	P.cur_slot = 0;
	P.slots[0].used = 1;
	if (changed)
		*changed = nchanged;
	return 0;
fail:
	/* nothing changes: the policies in force stay (a reload never fails open) */
	P.cur_slot = 0;
	P.n = old_n;
	memcpy(P.slots, saved, sizeof(saved));
	P.nslots = old_nslots;
	for (int i = 0; i < old_n; i++)
		P.e[i].live = (uint8_t)((live_before[i / 8] >> (i % 8)) & 1);
	return -1;
}

/* FNV-1a over a value cut like the kernel cuts it (DP_ID_MAX - 1 bytes), folded into h */
static uint64_t ident_fold(uint64_t h, const char *s, size_t n)
{
	if (n > DP_ID_MAX - 1)
		n = DP_ID_MAX - 1;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * DP_FNV_PRIME;
	return h;
}

/* the kernel's table for a new job's first exec: hash(project/name) or hash(project) -> slot */
static void push_ident(struct connect_bpf *conn)
{
	int fd = bpf_map__fd(conn->maps.ident_slot);
	uint64_t next;

	/* rebuilt whole: it is small, and a stale entry would name a slot that moved */
	while (bpf_map_get_next_key(fd, NULL, &next) == 0)
		if (bpf_map_delete_elem(fd, &next) < 0)
			break;
	for (int s = 1; s < P.nslots; s++) {
		const char *rel = P.slots[s].rel, *slash = strrchr(rel, '/');
		size_t rl = strlen(rel);
		uint64_t h;
		uint32_t v = P.phys[s];

		if (!P.slots[s].used || !slash || rl < 6)
			continue;
		/* "P/default.conf" -> project P; "P/N.conf" -> project P, name N */
		h = ident_fold(DP_FNV_OFFSET, rel, (size_t)(slash - rel));
		if (strcmp(slash + 1, "default.conf") != 0)
			h = ident_fold((h ^ '/') * DP_FNV_PRIME, slash + 1, rl - (size_t)(slash + 1 - rel) - 5);
		bpf_map_update_elem(fd, &h, &v, BPF_ANY);
	}
}

/* every job_slot entry that holds generation `from` now holds `to` (0: deleted, the default) */
static void repoint_jobs(uint32_t from, uint32_t to)
{
	int fd = bpf_map__fd(CONN->maps.job_slot);
	uint32_t cur, next, v;
	int have = 0;

	while (bpf_map_get_next_key(fd, have ? &cur : NULL, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &v) == 0 && v == from) {
			if (to)
				bpf_map_update_elem(fd, &next, &to, BPF_EXIST);
			else
				bpf_map_delete_elem(fd, &next);
		}
		cur = next;
		have = 1;
	}
}

int enforce_apply(char *errbuf, size_t errn)
{
	int rc = 0, fd_def;
	uint32_t zero = 0;

	if (!CONN)
		return 0;
	fd_def = bpf_map__fd(CONN->maps.slot_default);
	for (int s = 0; s < P.nslots; s++) {
		uint32_t old = P.phys[s], np = 0;
		int keep = s == 0 || P.slots[s].used;

		if (!P.slots[s].dirty)
			continue;
		P.slots[s].dirty = 0;
		if (keep) {
			np = P.next_phys++;
			if (P.next_phys < MAX_SLOTS)
				P.next_phys = MAX_SLOTS; /* wrapped (after 4 billion reloads): skip the first numbers */
			if (push_slot(CONN, s, np, errbuf, errn) < 0) {
				purge_slot(CONN, np); /* the old generation stays in force */
				rc = -1;
				continue;
			}
			if (s == 0)
				bpf_map_update_elem(fd_def, &zero, &np, BPF_ANY);
		}
		/* a removed policy's jobs fall back to the default (the daemon reassigns them) */
		repoint_jobs(old, keep ? np : 0);
		P.phys[s] = keep ? np : old;
		push_ident(CONN);
		purge_slot(CONN, old);
		/* a job that took the old number from ident_slot at its first exec meanwhile */
		repoint_jobs(old, keep ? np : 0);
		if (!keep)
			P.phys[s] = (uint32_t)s; /* unused: a new policy in this slot starts afresh */
	}
	push_ident(CONN);
	return rc;
}

int enforce_policies(void)
{
	int n = 0;

	for (int s = 1; s < P.nslots; s++)
		n += P.slots[s].used;
	return n + (P.slots[0].hash != 0);
}

/* a path component we accept from a job's environment: no "..", no "/" in a job name */
static int safe_rel(const char *s, int allow_slash)
{
	if (!s || !s[0] || s[0] == '/' || s[0] == '.')
		return 0;
	if (strstr(s, "/.") || strstr(s, "//") || (!allow_slash && strchr(s, '/')))
		return 0;
	return strlen(s) < 400;
}

int enforce_slot_for(const char *project, const char *name, const char **rel)
{
	char want[512];
	int s;

	if (rel)
		*rel = "default";
	if (!safe_rel(project, 1))
		return 0;
	if (safe_rel(name, 0)) {
		snprintf(want, sizeof(want), "%s/%s.conf", project, name);
		if ((s = slot_by_rel(want)) > 0) {
			if (rel)
				*rel = P.slots[s].rel;
			return s;
		}
	}
	snprintf(want, sizeof(want), "%s/default.conf", project);
	if ((s = slot_by_rel(want)) > 0) {
		if (rel)
			*rel = P.slots[s].rel;
		return s;
	}
	return 0;
}

int enforce_set_job(uint32_t job, int slot)
{
	uint32_t v = (uint32_t)slot;

	if (!CONN || !job)
		return 0;
	if (slot == 0)
		return bpf_map_delete_elem(bpf_map__fd(CONN->maps.job_slot), &job) < 0 && errno != ENOENT ? -1 : 0;
	v = P.phys[slot];
	return bpf_map_update_elem(bpf_map__fd(CONN->maps.job_slot), &job, &v, BPF_ANY);
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
