/* Screen and buttons (docs/appliance.md §3): lines of text on stdout with answers from stdin
 * (a person at a terminal), or a Unix socket created 0600 that one client at a time drives.
 * A client that connects while a screen waits gets that screen. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "device.h"
#include "host_board.h"

int host_ui_open(board *b, const char *spec, char *err, size_t cap) {
    b->ui_listen = -1;
    b->ui_client = -1;
    b->ui_in_len = 0;
    b->ui_in_overflow = 0;
    b->screen_pending = 0;
    if (strcmp(spec, "stdio") == 0) {
        b->ui_mode = UI_STDIO;
        b->ui_in_fd = 0;
        return 0;
    }
    if (strncmp(spec, "unix:", 5) != 0 || spec[5] == '\0') {
        snprintf(err, cap, "--ui must be stdio or unix:PATH");
        return -1;
    }
    b->ui_mode = UI_UNIX;
    b->ui_path = spec + 5;
    b->ui_in_fd = -1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(b->ui_path) >= sizeof addr.sun_path) {
        snprintf(err, cap, "the UI socket path is too long");
        return -1;
    }
    strcpy(addr.sun_path, b->ui_path);
    struct stat st;
    if (lstat(b->ui_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, cap, "%s exists and is not a socket", b->ui_path);
            return -1;
        }
        unlink(b->ui_path); /* left by a stub that was killed */
    }
    b->ui_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (b->ui_listen < 0) {
        snprintf(err, cap, "cannot create the UI socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177); /* the socket file is born 0600 */
    int rc = bind(b->ui_listen, (struct sockaddr *)&addr, sizeof addr);
    umask(old);
    if (rc != 0 || listen(b->ui_listen, 4) != 0) {
        snprintf(err, cap, "cannot listen on %s: %s", b->ui_path, strerror(errno));
        return -1;
    }
    return 0;
}

void host_ui_close(board *b) {
    if (b->ui_client >= 0) close(b->ui_client);
    if (b->ui_listen >= 0) {
        close(b->ui_listen);
        unlink(b->ui_path);
    }
    b->ui_client = b->ui_listen = -1;
}

static void drop_client(board *b) {
    close(b->ui_client);
    b->ui_client = -1;
    b->ui_in_fd = -1;
    b->ui_in_len = 0;
    b->ui_in_overflow = 0;
}

/* One line to the UI; for the socket, a client that does not read is dropped. */
static void ui_send(board *b, const char *line) {
    size_t n = strlen(line);
    if (b->ui_mode == UI_STDIO) {
        fputs(line, stdout);
        fflush(stdout);
        return;
    }
    if (b->ui_client < 0) return;
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(b->ui_client, line + done, n - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            drop_client(b);
            return;
        }
        done += (size_t)w;
    }
}

static void send_screen(board *b) {
    char buf[SCREEN_LINE_MAX + 8];
    snprintf(buf, sizeof buf, "SCREEN %u\n", b->screen_no);
    ui_send(b, buf);
    for (unsigned i = 0; i < b->n_lines; i++) {
        snprintf(buf, sizeof buf, "> %s\n", b->lines[i]);
        ui_send(b, buf);
    }
    ui_send(b, "PROMPT y/n\n");
}

void board_screen_show(board *b, unsigned screen_no, const char *const *lines, unsigned n) {
    b->screen_no = screen_no;
    b->n_lines = n > SCREEN_MAX_LINES ? SCREEN_MAX_LINES : n;
    for (unsigned i = 0; i < b->n_lines; i++) {
        /* The core escapes host text; a stray control character must still not reach a
         * terminal or split a line of the channel. */
        size_t k = 0;
        for (const char *p = lines[i]; *p && k + 1 < SCREEN_LINE_MAX; p++)
            b->lines[i][k++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? '?' : *p;
        b->lines[i][k] = '\0';
    }
    b->screen_pending = 1;
    send_screen(b);
}

void board_screen_done(board *b, unsigned screen_no, const char *verdict) {
    char buf[64];
    b->screen_pending = 0;
    snprintf(buf, sizeof buf, "DONE %u %s\n", screen_no, verdict);
    ui_send(b, buf);
}

void host_ui_accept(board *b) {
    int fd = accept4(b->ui_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (b->ui_client >= 0) {
        /* One person at a time. */
        static const char busy[] = "ERROR another client holds the screen\n";
        if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL) < 0) { /* nothing to do */ }
        close(fd);
        return;
    }
    b->ui_client = fd;
    b->ui_in_fd = fd;
    b->ui_in_len = 0;
    if (b->screen_pending) send_screen(b);
}

static void answer(board *b, struct device *d, const char *line) {
    (void)b;
    if (strcmp(line, "y") == 0 || strcmp(line, "Y") == 0) device_button(d, 1);
    else if (strcmp(line, "n") == 0 || strcmp(line, "N") == 0) device_button(d, 0);
}

void host_ui_input(board *b, struct device *d, int fd) {
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        if (b->ui_mode == UI_UNIX) drop_client(b);
        else b->ui_in_fd = -1; /* stdin closed: no more answers from there */
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n') {
            if (!b->ui_in_overflow) {
                while (b->ui_in_len > 0 && (b->ui_in[b->ui_in_len - 1] == '\r' ||
                                            b->ui_in[b->ui_in_len - 1] == ' '))
                    b->ui_in_len--;
                b->ui_in[b->ui_in_len] = '\0';
                answer(b, d, b->ui_in);
            }
            b->ui_in_len = 0;
            b->ui_in_overflow = 0;
        } else if (b->ui_in_len + 1 < sizeof b->ui_in) {
            b->ui_in[b->ui_in_len++] = c;
        } else {
            b->ui_in_overflow = 1;
        }
    }
}
