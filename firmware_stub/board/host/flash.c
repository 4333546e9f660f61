/* Flash: one file replaced atomically (a new 0600 file, write, fsync, rename over the old,
 * fsync of the directory), so a kill at any moment leaves the old image or the new one. An
 * exclusive lock on PATH.lock keeps a second stub off the same flash. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host_board.h"

int host_flash_open(board *b, const char *path, char *err, size_t cap) {
    b->flash_path = path;
    if ((size_t)snprintf(b->tmp_path, sizeof b->tmp_path, "%s.tmp", path) >= sizeof b->tmp_path ||
        (size_t)snprintf(b->lock_path, sizeof b->lock_path, "%s.lock", path) >= sizeof b->lock_path) {
        snprintf(err, cap, "the flash path is too long");
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    b->dir_fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b->dir_fd < 0) {
        snprintf(err, cap, "cannot open the flash file's directory: %s", strerror(errno));
        return -1;
    }
    b->lock_fd = open(b->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (b->lock_fd < 0) {
        snprintf(err, cap, "cannot open %s: %s", b->lock_path, strerror(errno));
        return -1;
    }
    if (flock(b->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, cap, "%s is in use by another stub", path);
        return -1;
    }
    /* A temp file left by a kill during a write is not an image: the old one still is. */
    if (unlink(b->tmp_path) == 0) fsync(b->dir_fd);
    return 0;
}

int board_flash_read(board *b, uint8_t *buf, size_t cap, size_t *len) {
    int fd = open(b->flash_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? 1 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > cap) {
        close(fd);
        return -1;
    }
    size_t want = (size_t)st.st_size, got = 0;
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return 0;
}

int board_flash_write(board *b, const uint8_t *image, size_t len) {
    int fd = open(b->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, image + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    if (done != len || fsync(fd) != 0) {
        close(fd);
        unlink(b->tmp_path);
        return -1;
    }
    if (close(fd) != 0 || rename(b->tmp_path, b->flash_path) != 0) {
        unlink(b->tmp_path);
        return -1;
    }
    return fsync(b->dir_fd) == 0 ? 0 : -1;
}
