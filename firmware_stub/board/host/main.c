/* tka-appliance-stub --flash PATH [--ui stdio|unix:PATH] [--link PATH]
 * The appliance's firmware on the host board: prints `serial: /dev/pts/N` once ready and runs
 * until SIGTERM or SIGINT, wiping its secrets on the way out. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "host_board.h"

#define PROG "tka-appliance-stub"
#define USAGE "usage: " PROG " --flash PATH [--ui stdio|unix:PATH] [--link PATH]"
#define TICK_MS 20

static device dev;     /* large: message buffers, authority, audit log */
static board host;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

uint64_t board_millis(board *b) {
    (void)b;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t board_unix_time(board *b) {
    (void)b;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec > 0 ? (uint64_t)ts.tv_sec : 0;
}

int board_random(board *b, uint8_t *out, size_t len) {
    (void)b;
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(out + done, len - done, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

void board_log(board *b, const char *line) {
    (void)b;
    fprintf(stderr, PROG ": %s\n", line);
}

static void usage_error(const char *msg) {
    fprintf(stderr, PROG ": %s (%s)\n", msg, USAGE);
    exit(2);
}

static void fatal(const char *msg) {
    fprintf(stderr, PROG ": %s\n", msg);
    exit(1);
}

int main(int argc, char **argv) {
    const char *flash = NULL, *ui = "stdio", *link_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--flash") == 0 ? &flash
                            : strcmp(a, "--ui") == 0  ? &ui
                            : strcmp(a, "--link") == 0 ? &link_path
                                                       : NULL;
        if (slot == NULL) {
            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                puts(USAGE);
                return 0;
            }
            usage_error("unknown argument");
        }
        if (i + 1 >= argc || argv[i + 1][0] == '\0') usage_error("an option lacks its value");
        *slot = argv[++i];
    }
    if (flash == NULL) usage_error("--flash is required");
    if (strcmp(ui, "stdio") != 0 && (strncmp(ui, "unix:", 5) != 0 || ui[5] == '\0'))
        usage_error("--ui must be stdio or unix:PATH");

    /* Secrets must not end up in a core file or be readable through ptrace by others. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    char err[512];
    host.ui_listen = host.ui_client = -1;
    if (host_flash_open(&host, flash, err, sizeof err) != 0) fatal(err);
    dev.board_name = "host";
    dev_error derr;
    if (device_boot(&dev, &host, &derr) != 0) {
        snprintf(err, sizeof err, "cannot start: %s", derr.message);
        fatal(err);
    }
    if (host_pty_open(&host, err, sizeof err) != 0 || host_ui_open(&host, ui, err, sizeof err) != 0) {
        device_shutdown(&dev);
        fatal(err);
    }
    if (link_path != NULL) {
        struct stat st;
        if (lstat(link_path, &st) == 0 && S_ISLNK(st.st_mode)) unlink(link_path);
        if (symlink(host.slave_name, link_path) != 0) {
            device_shutdown(&dev);
            snprintf(err, sizeof err, "cannot create the link %s: %s", link_path, strerror(errno));
            fatal(err);
        }
    }
    printf(PROG " " FW_VERSION " board=host\n");
    printf("serial: %s\n", host.slave_name);
    fflush(stdout);

    uint64_t last_tick = 0;
    while (!stop_signal) {
        struct pollfd fds[4];
        int n = 0;
        fds[n++] = (struct pollfd){host.master, POLLIN | (host.out_len ? POLLOUT : 0), 0};
        int listen_i = -1, in_i = -1;
        if (host.ui_listen >= 0) {
            listen_i = n;
            fds[n++] = (struct pollfd){host.ui_listen, POLLIN, 0};
        }
        if (host.ui_in_fd >= 0) {
            in_i = n;
            fds[n++] = (struct pollfd){host.ui_in_fd, POLLIN, 0};
        }
        int rc = poll(fds, (nfds_t)n, TICK_MS);
        if (rc < 0 && errno != EINTR) fatal("poll failed");
        if (rc > 0) {
            if (fds[0].revents & POLLIN) {
                uint8_t buf[4096];
                ssize_t got = read(host.master, buf, sizeof buf);
                if (got > 0) device_serial_input(&dev, buf, (size_t)got);
            }
            if (fds[0].revents & POLLOUT) host_pty_flush(&host);
            if (listen_i >= 0 && (fds[listen_i].revents & POLLIN)) host_ui_accept(&host);
            if (in_i >= 0 && (fds[in_i].revents & (POLLIN | POLLHUP | POLLERR)))
                host_ui_input(&host, &dev, fds[in_i].fd);
        }
        uint64_t now = board_millis(&host);
        if (now - last_tick >= TICK_MS || rc > 0) {
            device_tick(&dev);
            last_tick = now;
        }
    }
    board_log(&host, stop_signal == SIGINT ? "interrupted; wiping secrets" : "stopping; wiping secrets");
    device_shutdown(&dev);
    host_pty_flush(&host);
    host_ui_close(&host);
    if (link_path != NULL) unlink(link_path);
    return 0;
}
