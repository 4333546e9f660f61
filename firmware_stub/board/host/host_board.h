/*
 * The host board: the firmware core as a Linux process. The serial line is a pseudo-terminal,
 * the flash a file replaced atomically, the screen and buttons a text channel (the terminal or
 * a Unix socket, docs/appliance.md §3).
 */
#ifndef FW_HOST_BOARD_H
#define FW_HOST_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "screen.h"

#define HOST_OUT_MAX (256u * 1024) /* serial bytes waiting for the pty */
#define HOST_UI_IN_MAX 256

enum { UI_STDIO, UI_UNIX };

struct board {
    /* serial */
    int master;
    int slave;               /* kept open: a host closing the port must not break the master */
    char slave_name[128];
    uint8_t out[HOST_OUT_MAX];
    size_t out_len;

    /* flash */
    const char *flash_path;
    char tmp_path[4096];
    char lock_path[4096];
    int dir_fd;
    int lock_fd;

    /* screen and buttons */
    int ui_mode;
    const char *ui_path;
    int ui_listen;
    int ui_client;           /* -1 when none */
    int ui_in_fd;            /* where answers come from: stdin or the client */
    char ui_in[HOST_UI_IN_MAX];
    size_t ui_in_len;
    int ui_in_overflow;
    int screen_pending;
    unsigned screen_no;
    unsigned n_lines;
    char lines[SCREEN_MAX_LINES][SCREEN_LINE_MAX];
};

/* pty.c */
int host_pty_open(board *b, char *err, size_t cap);
void host_pty_flush(board *b);          /* writes queued serial bytes */

/* flash.c */
int host_flash_open(board *b, const char *path, char *err, size_t cap);

/* ui.c */
int host_ui_open(board *b, const char *spec, char *err, size_t cap);
void host_ui_close(board *b);
/* Handles readable UI fds; answers go to the device through device_button. */
struct device;
void host_ui_input(board *b, struct device *d, int fd);
void host_ui_accept(board *b);

#endif
