/* The serial line: a pseudo-terminal in raw mode. The host opens the slave (printed as
 * `serial: /dev/pts/N`) exactly as it would open /dev/ttyACM0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "host_board.h"

int host_pty_open(board *b, char *err, size_t cap) {
    b->master = posix_openpt(O_RDWR | O_NOCTTY);
    if (b->master < 0 || grantpt(b->master) != 0 || unlockpt(b->master) != 0) {
        snprintf(err, cap, "cannot open a pseudo-terminal: %s", strerror(errno));
        return -1;
    }
    if (ptsname_r(b->master, b->slave_name, sizeof b->slave_name) != 0) {
        snprintf(err, cap, "cannot name the pseudo-terminal: %s", strerror(errno));
        return -1;
    }
    b->slave = open(b->slave_name, O_RDWR | O_NOCTTY);
    if (b->slave < 0) {
        snprintf(err, cap, "cannot open %s: %s", b->slave_name, strerror(errno));
        return -1;
    }
    /* Raw: no echo, no line discipline, 8 bits, every byte as it comes. */
    struct termios t;
    if (tcgetattr(b->slave, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(b->slave, TCSANOW, &t);
    }
    int fl = fcntl(b->master, F_GETFL);
    fcntl(b->master, F_SETFL, fl | O_NONBLOCK);
    fcntl(b->master, F_SETFD, FD_CLOEXEC);
    fcntl(b->slave, F_SETFD, FD_CLOEXEC);
    b->out_len = 0;
    return 0;
}

void host_pty_flush(board *b) {
    size_t done = 0;
    while (done < b->out_len) {
        ssize_t n = write(b->master, b->out + done, b->out_len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break; /* EAGAIN: the host is not reading; try again when poll says so */
    }
    memmove(b->out, b->out + done, b->out_len - done);
    b->out_len -= done;
}

int board_serial_write(board *b, const uint8_t *data, size_t len) {
    if (len > sizeof b->out - b->out_len) {
        /* Nobody reads the line: drop (the link layer retransmits what matters). */
        host_pty_flush(b);
        if (len > sizeof b->out - b->out_len) return -1;
    }
    memcpy(b->out + b->out_len, data, len);
    b->out_len += len;
    host_pty_flush(b);
    return 0;
}
