/*
 * Enforce mode, the policy: its directives parsed from the config file (or a policy file of
 * the daemon's directory) into entries. The job cgroup is enforce_cgroup.c, the kernel maps of
 * bpf/enforce.inc.c enforce_maps.c, the daemon's policy directory enforce_dir.c, what the
 * records say enforce_verdict.c.
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
#include "features/enforce_state.h"
#include "enforce.h"
#include "connect.skel.h"

struct enforce_state P;

int policy_entries(void)
{
	return P.n;
}

/* ---- parsing ---- */

int parse_ip16(const char *s, uint8_t out[16], int *is4)
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

/*
 * A free entry: appended while there is room, else one a reload replaced whose kernel keys were
 * purged during an earlier reload. By then the records that named it were emitted before the
 * purge and drained by the main loop since, so reusing its id cannot rename a verdict in flight.
 */
static struct entry *new_entry(char *errbuf, size_t errn)
{
	struct entry *e = NULL;

	if (P.n < MAX_ENTRIES) {
		e = &P.e[P.n++];
	} else {
		/* entries before the cursor were not free earlier in this reload and cannot become
		 * free before the next (purges come after parsing): each reload scans the table once */
		static uint32_t cursor_reload;
		static int cursor;

		if (cursor_reload != P.reloads) {
			cursor_reload = P.reloads;
			cursor = 0;
		}
		for (; cursor < P.n && !e; cursor++)
			if (!P.e[cursor].live && !P.e[cursor].in_kernel && P.e[cursor].freed_at < P.reloads)
				e = &P.e[cursor];
		if (!e) {
			snprintf(errbuf, errn, "too many allow entries in force (max %d over all policies)", MAX_ENTRIES);
			return NULL;
		}
	}
	memset(e, 0, sizeof(*e));
	e->slot = (uint16_t)P.cur_slot;
	e->live = 1;
	e->from_dir = P.cur_slot != 0 || P.nslots > 0;
	e->freed_at = P.reloads;
	return e;
}

/* undo new_entry for a line that turned out invalid */
static void drop_entry(struct entry *e)
{
	e->live = 0;
	if (e == &P.e[P.n - 1])
		P.n--;
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
		drop_entry(e);
		snprintf(errbuf, errn, "invalid name \"%s\": %s", arg, why);
		return -1;
	}
	if (suffix && !strchr(e->name, '.')) {
		drop_entry(e);
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
		drop_entry(e);
		snprintf(errbuf, errn, "invalid CIDR \"%s\": \"%s\" is not an IPv4 or IPv6 address", arg, s);
		return -1;
	}
	prefix = is4 ? 32 : 128;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);

		if (!slash[1] || *end || v < 0 || v > prefix) {
			drop_entry(e);
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
			drop_entry(e);
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

int add_resolver(const char *s, char *errbuf, size_t errn)
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
