/* Pinned links (agent-c/kernel/pins.c). */
#ifndef DPNDNCY_KERNEL_PINS_H
#define DPNDNCY_KERNEL_PINS_H

/* remove the pins in dir and dir itself (and PIN_DIR when it was the last agent's) */
void unpin_all(const char *dir);

#endif
