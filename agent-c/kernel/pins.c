/* Pinned links under PIN_DIR: what `stop` (or a daemon's successor) removes when the agent that
 * pinned them is gone. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "kernel/pins.h"

void unpin_all(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
	/* and the common parent when this was the last agent's directory */
	if (strncmp(dir, PIN_DIR "/", sizeof(PIN_DIR)) == 0)
		rmdir(PIN_DIR);
}
