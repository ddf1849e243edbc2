/* dpndncy-agent: command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "base/util.h"
#include "commands/commands.h"
#include "commands/session.h"

static const char usage_main[] =
	"usage: " PROG " <command> [options]\n"
	"\n"
	"Runtime monitor for CI jobs: records process spawns, outbound connects,\n"
	"sensitive file opens and DNS lookups as NDJSON (schema/event.v1.json).\n"
	"\n"
	"commands:\n"
	"  probe                        print the attach point each hook would use (JSON)\n"
	"  run --log FILE -- CMD...     trace while CMD runs; exit with CMD's exit code\n"
	"  start --log FILE             trace in the background until `stop`\n"
	"  stop                         stop the background agent, print statistics (JSON)\n"
	"  status                       is an agent running, since when, counters (JSON)\n"
	"  daemon --jobs-dir DIR        watch every CI job on the host, one log per job\n"
	"\n"
	"  --help, --version            on every command\n"
	"Run `" PROG " <command> --help` for its options.\n";

static const char usage_probe[] =
	"usage: " PROG " probe [--file-hook lsm|fentry|kprobe|tracepoint]\n"
	"Loads and attaches each candidate hook for a moment and prints JSON: kernel,\n"
	"BTF, the attach point chosen per hook and why each better one is unavailable.\n";

static const char usage_run[] =
	"usage: " PROG " run --log FILE [--mode observe] [--config FILE] [--file-hook H] -- CMD [ARGS...]\n"
	"Attach every hook, run CMD as a child, stop when it exits, and exit with its\n"
	"code (128+N when killed by signal N). The log is complete and fsynced on return.\n"
	"  --log FILE        NDJSON output (truncated)\n"
	"  --mode MODE       observe (default) or enforce: default-deny egress for CMD, which runs\n"
	"                    in a new cgroup <cgroup2>/dpndncy-<pid>; the policy comes from --config\n"
	"                    (allow-host, allow-suffix, allow-cidr, dns-resolver, allow-metadata)\n"
	"  --config FILE     extra file rules, excludes, benign readers (see README)\n"
	"  --file-hook H     force the file attach point: lsm, fentry, kprobe, tracepoint\n"
	"                    (also DPNDNCY_FORCE_FILE_HOOK)\n";

static const char usage_start[] =
	"usage: " PROG " start --log FILE [--state-dir DIR] [--mode observe|enforce] [--cgroup PATH] [--config FILE]\n"
	"                     [--file-hook H]\n"
	"Detach into the background; exit 0 only when every hook is attached and the\n"
	"log is open, printing {\"pid\":..,\"attach\":{..},\"log\":..}.\n"
	"  --state-dir DIR   default " DEFAULT_STATE_DIR "\n"
	"  --cgroup PATH     enforce mode: the cgroup v2 directory (absolute, or relative to the\n"
	"                    cgroup2 mount) whose processes are judged; never the root. Default:\n"
	"                    a new <cgroup2>/dpndncy-<pid>, printed as \"cgroup\"; move the job in\n"
	"                    by writing its pids to cgroup.procs\n";

static const char usage_stop[] =
	"usage: " PROG " stop [--state-dir DIR]\n"
	"Stop the background agent: it drains, writes the final agent record and\n"
	"removes its pins and mounts. Prints statistics as JSON. If the agent had\n"
	"died (e.g. SIGKILL), cleans up after it, closes the log with complete:false\n"
	"and exits 3.\n";

static const char usage_status[] =
	"usage: " PROG " status [--state-dir DIR]\n"
	"Prints {\"running\":..,\"pid\":..,\"since\":..,\"counters\":{..}}.\n";

static const char usage_daemon[] =
	"usage: " PROG " daemon --jobs-dir DIR [--mode observe|enforce] [--cgroup PATH] [--policy-dir DIR]\n"
	"                      [--job-idle SECONDS] [--state-dir DIR] [--config FILE] [--file-hook H]\n"
	"Watch every CI job on this host (docs/daemon.md): one log per job in --jobs-dir, named by\n"
	"the job-marker variables of the config (default DPNDNCY_JOB); a control stream of JSON lines\n"
	"on stdout. Runs in the foreground until SIGTERM/SIGINT; SIGHUP reloads --policy-dir.\n"
	"  --jobs-dir DIR    job logs (and the daemon's own log, daemon-*.ndjson)\n"
	"  --mode MODE       observe (default) or enforce: each job's policy, on --cgroup PATH\n"
	"  --cgroup PATH     enforce: the cgroup the jobs run under (never a cgroup v2 root)\n"
	"  --policy-dir DIR  enforce: default.conf, <project>/default.conf, <project>/<job>.conf\n"
	"  --job-idle S      a job ends S seconds after its last process (default 10)\n"
	"  --state-dir DIR   lock and state (default /run/dpndncy-daemon); in enforce mode the links\n"
	"                    are pinned, so enforcement outlives a crash until the next daemon starts\n"
	"                    (or `stop --state-dir DIR` removes it)\n";

enum { O_LOG = 1, O_STATE = 2, O_MODE = 4, O_CONFIG = 8, O_FILEHOOK = 16, O_CMD = 32, O_CGROUP = 64,
       O_DAEMON = 128 };

static void version(void)
{
	printf("%s %s (commit %s)\n", PROG, DPNDNCY_VERSION, DPNDNCY_COMMIT);
}

static int parse(int argc, char **argv, unsigned allowed, const char *cmd, const char *usage, struct opts *o, int *done)
{
	*done = 0;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i], *val = NULL, *eq;
		const char **dst = NULL;
		unsigned need = 0;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			*done = 1;
			return 0;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			version();
			*done = 1;
			return 0;
		}
		if (strcmp(a, "--") == 0 || a[0] != '-') {
			if (!(allowed & O_CMD)) {
				err_msg("%s: unexpected argument '%s' (see %s %s --help)", cmd, a, PROG, cmd);
				return EX_USAGE;
			}
			o->cmd = argv + i + (strcmp(a, "--") == 0 ? 1 : 0);
			return 0;
		}
		eq = strchr(a, '=');
		if (eq && a[1] == '-') {
			*eq = 0;
			val = eq + 1;
		}
		if (!strcmp(a, "--log")) {
			dst = &o->log;
			need = O_LOG;
		} else if (!strcmp(a, "--state-dir")) {
			dst = &o->state_dir;
			need = O_STATE;
		} else if (!strcmp(a, "--mode")) {
			dst = &o->mode;
			need = O_MODE;
		} else if (!strcmp(a, "--config")) {
			dst = &o->config;
			need = O_CONFIG;
		} else if (!strcmp(a, "--file-hook")) {
			dst = &o->file_hook;
			need = O_FILEHOOK;
		} else if (!strcmp(a, "--cgroup")) {
			dst = &o->cgroup;
			need = O_CGROUP;
		} else if (!strcmp(a, "--jobs-dir")) {
			dst = &o->jobs_dir;
			need = O_DAEMON;
		} else if (!strcmp(a, "--policy-dir")) {
			dst = &o->policy_dir;
			need = O_DAEMON;
		} else if (!strcmp(a, "--job-idle")) {
			dst = &o->job_idle;
			need = O_DAEMON;
		}
		if (!dst || !(allowed & need)) {
			err_msg("%s: unknown option '%s' (see %s %s --help)", cmd, a, PROG, cmd);
			return EX_USAGE;
		}
		if (!val) {
			if (i + 1 >= argc) {
				err_msg("%s: option '%s' needs a value", cmd, a);
				return EX_USAGE;
			}
			val = argv[++i];
		}
		if (!*val) {
			err_msg("%s: option '%s' needs a non-empty value", cmd, a);
			return EX_USAGE;
		}
		*dst = val;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	const char *cmd;
	int rc, done;

	memset(&o, 0, sizeof(o));
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EX_USAGE;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
		version();
		return 0;
	}
	if (!strcmp(cmd, "probe")) {
		rc = parse(argc - 2, argv + 2, O_FILEHOOK, cmd, usage_probe, &o, &done);
		return rc || done ? rc : cmd_probe(&o);
	}
	if (!strcmp(cmd, "run")) {
		rc = parse(argc - 2, argv + 2, O_LOG | O_MODE | O_CONFIG | O_FILEHOOK | O_CMD, cmd, usage_run, &o, &done);
		return rc || done ? rc : cmd_run(&o);
	}
	if (!strcmp(cmd, "start")) {
		rc = parse(argc - 2, argv + 2, O_LOG | O_STATE | O_MODE | O_CONFIG | O_FILEHOOK | O_CGROUP, cmd, usage_start, &o,
			   &done);
		return rc || done ? rc : cmd_start(&o);
	}
	if (!strcmp(cmd, "stop")) {
		rc = parse(argc - 2, argv + 2, O_STATE, cmd, usage_stop, &o, &done);
		return rc || done ? rc : cmd_stop(&o);
	}
	if (!strcmp(cmd, "status")) {
		rc = parse(argc - 2, argv + 2, O_STATE, cmd, usage_status, &o, &done);
		return rc || done ? rc : cmd_status(&o);
	}
	if (!strcmp(cmd, "daemon")) {
		rc = parse(argc - 2, argv + 2, O_MODE | O_CONFIG | O_FILEHOOK | O_CGROUP | O_DAEMON | O_STATE, cmd,
			   usage_daemon, &o, &done);
		return rc || done ? rc : cmd_daemon(&o);
	}
	err_msg("unknown command '%s' (probe, run, start, stop, status, daemon; see %s --help)", cmd, PROG);
	return EX_USAGE;
}
