/* What the other layers may ask of the loaded objects: links, maps, the pin directory, and
 * the handover of the connect entry mark to the ia32 watch (agent-c/features/integrity.c). */
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "kernel/bpfload.h"
#include "kernel/bpfload_int.h"

const char *bpf_pin_dir(struct agent_bpf *a)
{
	return a && a->pinned ? a->pin_dir : "";
}

/* ---- accessors for agent-c/features/integrity.c ---- */
int bpf_link_at(struct agent_bpf *a, int i, struct bpf_link **l, const char **name)
{
	if (!a || i < 0 || i >= a->nlinks)
		return -1;
	*l = a->links[i];
	*name = a->link_names[i];
	return 0;
}

int bpf_root_cgroup_fd(struct agent_bpf *a)
{
	return a ? a->cgroup_fd : -1;
}

int bpf_exec_map_fd(struct agent_bpf *a, const char *name)
{
	return a && a->exec ? bpf_object__find_map_fd_by_name(a->exec->obj, name) : -1;
}

int bpf_file_map_fd(struct agent_bpf *a, const char *name)
{
	return a && a->file ? bpf_object__find_map_fd_by_name(a->file->obj, name) : -1;
}

/* the connect entry mark moves to the ia32 watch's raw sys_enter program (bpf/tamper.bpf.c):
 * the mark's map (bpf/connect_mark.bpf.h) while sys_enter_connect writes it, else -1 */
static int enter_link(struct agent_bpf *a)
{
	for (int i = 0; a && a->enter_tp && i < a->nlinks; i++)
		if (!strcmp(a->link_names[i], "enter_connect"))
			return i;
	return -1;
}

int bpf_connect_entry_fd(struct agent_bpf *a)
{
	return enter_link(a) >= 0 ? bpf_map__fd(a->conn->maps.connect_mark) : -1;
}

/* the raw program marks connect() entries now: sys_enter_connect goes (after, so none is missed) */
void bpf_connect_entry_moved(struct agent_bpf *a)
{
	int i = enter_link(a);

	if (i < 0)
		return;
	if (a->pinned)
		bpf_link__unpin(a->links[i]);
	bpf_link__destroy(a->links[i]);
	a->enter_tp = 0;
	for (a->nlinks--; i < a->nlinks; i++) {
		a->links[i] = a->links[i + 1];
		memcpy(a->link_names[i], a->link_names[i + 1], sizeof(a->link_names[0]));
	}
}
