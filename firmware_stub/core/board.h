/*
 * What the firmware core needs from a board. The core makes no OS calls; a board implements
 * these functions and drives the core through device.h (bytes in, button presses in, a tick at
 * least every 50 ms). firmware_stub/board/host/ implements them on Linux (a pseudo-terminal, a
 * flash file, a text channel for screen and buttons); a real board (RP2040 or STM32 with a
 * secure element, USB armory) implements them on its hardware. See docs/appliance.md, "Porting".
 */
#ifndef FW_BOARD_H
#define FW_BOARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct board board; /* defined by the board */

/* Serial line: queue bytes for the host. Returns 0, or -1 if the line is gone (bytes lost:
 * the link layer's retransmission covers it). */
int board_serial_write(board *b, const uint8_t *data, size_t len);

/* Flash: one image, read whole at boot and replaced whole and atomically (after a power cut
 * either the old or the new image is there, never a mix).
 * read: 0 = image read (*len set), 1 = no image yet (first boot), -1 = cannot read. */
int board_flash_read(board *b, uint8_t *buf, size_t cap, size_t *len);
/* write: 0 = the new image is durable, -1 = failed (the old image is intact). */
int board_flash_write(board *b, const uint8_t *image, size_t len);

/* Screen: show `n` lines as screen number `screen_no` and wait for the person (the board calls
 * device_button() with the answer); done: the screen is over with that verdict
 * ("approved", "declined", "timeout", "cancelled"). */
void board_screen_show(board *b, unsigned screen_no, const char *const *lines, unsigned n);
void board_screen_done(board *b, unsigned screen_no, const char *verdict);

/* Clocks: monotonic milliseconds (timeouts) and wall-clock Unix seconds (audit entries). */
uint64_t board_millis(board *b);
uint64_t board_unix_time(board *b);

/* Randomness for keys, salts and nonces: 0, or -1 if the source failed (the core refuses to
 * go on without it). */
int board_random(board *b, uint8_t *out, size_t len);

/* A diagnostic line for the developer console (never secrets, never what the person sees). */
void board_log(board *b, const char *line);

#endif
