/* The attach points as JSON (kernel/attachinfo.h). */
#include "base/sbuf.h"
#include "kernel/attachinfo.h"

void attach_json(const struct attach_info *ai, struct sbuf *b)
{
	sb_puts(b, "{\"exec\":");
	sb_json_cstr(b, ai->exec);
	sb_puts(b, ",\"connect\":");
	sb_json_cstr(b, ai->connect);
	sb_puts(b, ",\"file\":");
	sb_json_cstr(b, ai->file);
	sb_puts(b, ",\"dns\":");
	sb_json_cstr(b, ai->dns);
	sb_puts(b, ",\"exit\":");
	sb_json_cstr(b, ai->exitp);
	sb_puts(b, ",\"fork\":");
	sb_json_cstr(b, ai->fork);
	sb_puts(b, ",\"connect_result\":");
	sb_json_cstr(b, ai->connect_result);
	if (ai->dns_packet[0]) {
		sb_puts(b, ",\"dns_packet\":");
		sb_json_cstr(b, ai->dns_packet);
	}
	if (ai->tamper[0]) {
		sb_puts(b, ",\"tamper\":");
		sb_json_cstr(b, ai->tamper);
	}
	sb_putc(b, '}');
}
