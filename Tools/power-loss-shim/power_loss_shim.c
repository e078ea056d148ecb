// Power loss for real processes, loaded with LD_PRELOAD by skiff-torture.
//
// A process killed with SIGKILL loses nothing it wrote: the page cache survives it. A machine that loses
// power also loses every write that no fsync made durable. This library makes that loss reproducible:
// before each pwrite to a file under SKIFF_POWER_LOSS_PATH it appends to the journal SKIFF_POWER_LOSS_JOURNAL
// what the write is about to overwrite (the old bytes and the old file size); around each fsync or
// fdatasync it appends that a sync began (no write is in flight then: writes hold a read lock, the start
// of a sync the write lock) and that it succeeded. A sync covers the writes journaled before it began. After
// killing the process, skiff-torture undoes, newest first, every journaled write that no sync covered:
// the files are then as a power cut would have left them. Directory entries (create, rename, link, unlink)
// and truncations count as durable at once; a file unlinked or renamed over is forgotten, so that its
// inode number, reused, is not mistaken for it.
//
// Faults switched on at run time by files in SKIFF_DISK_FAULTS (a directory):
//   fsync-eio     fsync and fdatasync fail with EIO (the file is not marked durable)
//   write-enospc  pwrite fails with ENOSPC (the disk is full)
//   store-delay-ms  a number: each fsync or fdatasync of a file or directory under SKIFF_SLOW_STORE_PATH
//                   (the external store) first sleeps that long (a slow store)
//   sync-delay-ms   a number: each fsync or fdatasync of a file under SKIFF_POWER_LOSS_PATH sleeps that long
//                   after it began (a slow disk: writes made meanwhile are not covered by it)
//   write-delay-ms  a number: each pwrite to a file under SKIFF_POWER_LOSS_PATH first sleeps that long
//
// Journal records, native byte order, each appended with one write(2) to an O_APPEND file:
//   u32 magic 0x534b504c ('SKPL'), u32 kind (1 write, 2 sync done, 3 sync begun, 4 file gone), u64 device,
//   u64 inode, i64 offset (for kinds 2 and 3: the sync's number), i64 old size, u32 length written,
//   u32 old length, then `old length` old bytes (the bytes the write replaced, up to the old end of the file).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int journal = -1;
static const char *prefix;
static const char *faults;
static const char *store_prefix;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_rwlock_t in_flight = PTHREAD_RWLOCK_INITIALIZER;
static int64_t syncs;
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);

static void setup(void) {
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
    real_rename = dlsym(RTLD_NEXT, "rename");
    real_renameat = dlsym(RTLD_NEXT, "renameat");
    prefix = getenv("SKIFF_POWER_LOSS_PATH");
    faults = getenv("SKIFF_DISK_FAULTS");
    store_prefix = getenv("SKIFF_SLOW_STORE_PATH");
    const char *path = getenv("SKIFF_POWER_LOSS_JOURNAL");
    if (path && *path && prefix && *prefix) {
        journal = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (journal < 0) {
            fprintf(stderr, "power_loss_shim: cannot open the journal %s\n", path);
            abort();  // a run that believes its disk faults work when they do not proves nothing
        }
    }
}

// Sleeps `milliseconds`, all of them: a signal that interrupts the sleep does not shorten the fault.
static void sleep_ms(long milliseconds) {
    struct timespec left = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {}
}

static int fault_on(const char *name) {
    if (!faults || !*faults) return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", faults, name);
    return access(path, F_OK) == 0;
}

static long fault_number(const char *name) {
    if (!faults || !*faults) return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", faults, name);
    FILE *file = fopen(path, "r");
    if (!file) return 0;
    long value = 0;
    if (fscanf(file, "%ld", &value) != 1) value = 0;
    fclose(file);
    return value;
}

// Whether the file open as `fd` is under `under` (an unnamed O_TMPFILE file reads as "DIR/#N (deleted)").
static int opened_under(int fd, const char *under) {
    if (!under || !*under) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t length = readlink(link, path, sizeof path - 1);
    if (length <= 0) return 0;
    path[length] = 0;
    return strncmp(path, under, strlen(under)) == 0;
}

// Whether `fd` is a regular file under the node's data directory, whose writes are journaled.
static int watched(int fd, struct stat *info) {
    if (journal < 0 || fstat(fd, info) != 0 || !S_ISREG(info->st_mode)) return 0;
    return opened_under(fd, prefix);
}

static void record(uint32_t kind, const struct stat *info, int64_t offset, uint32_t written, const void *old, uint32_t length) {
    size_t size = 48 + length;
    unsigned char *buffer = malloc(size);
    if (!buffer) abort();  // a journal with a gap would undo the wrong bytes: better no run at all
    uint32_t magic = 0x534b504c;
    uint64_t device = info->st_dev, inode = info->st_ino;
    int64_t old_size = info->st_size;
    memcpy(buffer, &magic, 4);
    memcpy(buffer + 4, &kind, 4);
    memcpy(buffer + 8, &device, 8);
    memcpy(buffer + 16, &inode, 8);
    memcpy(buffer + 24, &offset, 8);
    memcpy(buffer + 32, &old_size, 8);
    memcpy(buffer + 40, &written, 4);
    memcpy(buffer + 44, &length, 4);
    if (length) memcpy(buffer + 48, old, length);
    if (write(journal, buffer, size) != (ssize_t)size) abort();
    free(buffer);
}

static ssize_t journaled_pwrite(ssize_t (*real)(int, const void *, size_t, off_t), int fd, const void *bytes, size_t count, off_t offset) {
    pthread_once(&once, setup);
    struct stat info;
    if (!watched(fd, &info)) return real(fd, bytes, count, offset);
    if (fault_on("write-enospc")) {
        errno = ENOSPC;
        return -1;
    }
    long delay = fault_number("write-delay-ms");
    if (delay > 0) sleep_ms(delay);
    // The bytes this write replaces: up to the old end of the file (beyond it, undoing is truncating).
    size_t existing = offset >= info.st_size ? 0 : (size_t)(info.st_size - offset) < count ? (size_t)(info.st_size - offset) : count;
    unsigned char *old = existing ? malloc(existing) : NULL;
    pthread_rwlock_rdlock(&in_flight);
    if (existing && (!old || pread(fd, old, existing, offset) != (ssize_t)existing)) abort();
    record(1, &info, offset, (uint32_t)count, old, (uint32_t)existing);
    free(old);
    ssize_t result = real(fd, bytes, count, offset);
    pthread_rwlock_unlock(&in_flight);
    return result;
}

ssize_t pwrite(int fd, const void *bytes, size_t count, off_t offset) {
    pthread_once(&once, setup);
    return journaled_pwrite(real_pwrite, fd, bytes, count, offset);
}

ssize_t pwrite64(int fd, const void *bytes, size_t count, off_t offset) {
    pthread_once(&once, setup);
    return journaled_pwrite(real_pwrite64, fd, bytes, count, offset);
}

static int journaled_sync(int (*real)(int), int fd) {
    if (opened_under(fd, store_prefix)) {
        long delay = fault_number("store-delay-ms");
        if (delay > 0) sleep_ms(delay);
    }
    struct stat info;
    int is_watched = watched(fd, &info);
    if (is_watched && fault_on("fsync-eio")) {
        errno = EIO;
        return -1;
    }
    int64_t number = 0;
    if (is_watched) {
        pthread_rwlock_wrlock(&in_flight);
        number = ++syncs;
        record(3, &info, number, 0, NULL, 0);
        pthread_rwlock_unlock(&in_flight);
    }
    if (is_watched) {
        long delay = fault_number("sync-delay-ms");
        if (delay > 0) sleep_ms(delay);
    }
    int result = real(fd);
    if (result == 0 && is_watched) record(2, &info, number, 0, NULL, 0);
    return result;
}

int fsync(int fd) {
    pthread_once(&once, setup);
    return journaled_sync(real_fsync, fd);
}

int fdatasync(int fd) {
    pthread_once(&once, setup);
    return journaled_sync(real_fdatasync, fd);
}

// A regular file that is about to be unlinked or replaced: its pending writes are moot.
static void forget(int directory, const char *path) {
    struct stat info;
    if (journal >= 0 && fstatat(directory, path, &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(info.st_mode)) {
        pthread_rwlock_wrlock(&in_flight);
        record(4, &info, 0, 0, NULL, 0);
        pthread_rwlock_unlock(&in_flight);
    }
}

int unlink(const char *path) {
    pthread_once(&once, setup);
    forget(AT_FDCWD, path);
    return real_unlink(path);
}

int unlinkat(int directory, const char *path, int flags) {
    pthread_once(&once, setup);
    if (!(flags & AT_REMOVEDIR)) forget(directory, path);
    return real_unlinkat(directory, path, flags);
}

int rename(const char *from, const char *to) {
    pthread_once(&once, setup);
    forget(AT_FDCWD, to);
    return real_rename(from, to);
}

int renameat(int from_directory, const char *from, int to_directory, const char *to) {
    pthread_once(&once, setup);
    forget(to_directory, to);
    return real_renameat(from_directory, from, to_directory, to);
}
