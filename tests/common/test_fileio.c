#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static char dir[64];

static void make_dir(void) {
  strcpy(dir, "/tmp/ca-fileio-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static size_t count_entries(void) {
  DIR *d = opendir(dir);
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

TestSuite(fileio, .init = make_dir, .fini = remove_dir);

Test(fileio, atomic_write_creates_with_mode_and_replaces) {
  char path[128];
  snprintf(path, sizeof(path), "%s/reg.json", dir);
  mode_t old = umask(077);
  cr_assert_eq(ca_write_file_atomic(path, "{\"a\":1}", 7, 0640, NULL), 0);
  umask(old);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0640, "mode is the caller's, not the umask's");
  cr_assert_eq(ca_write_file_atomic(path, "second", 6, 0600, NULL), 0);
  char *data;
  size_t len;
  cr_assert_eq(ca_read_file(path, 1024, &data, &len, NULL), 0);
  cr_assert_str_eq(data, "second");
  cr_assert_eq(len, 6);
  free(data);
  cr_assert_eq(count_entries(), 1, "no temp file left behind");
}

Test(fileio, atomic_write_without_directory_sync_replaces_the_same_way) {
  char path[128];
  snprintf(path, sizeof(path), "%s/reg.json", dir);
  cr_assert_eq(ca_write_file_atomic_flags(path, "first", 5, 0600, CA_WRITE_NO_DIR_SYNC, NULL), 0);
  cr_assert_eq(ca_write_file_atomic_flags(path, "second", 6, 0600, CA_WRITE_NO_DIR_SYNC, NULL), 0);
  char *data;
  size_t len;
  cr_assert_eq(ca_read_file(path, 1024, &data, &len, NULL), 0);
  cr_assert_str_eq(data, "second");
  free(data);
  cr_assert_eq(count_entries(), 1, "no temp file left behind");
  ca_error *err = NULL;
  char missing[160];
  snprintf(missing, sizeof(missing), "%s/no/such/dir/x", dir);
  cr_assert_eq(ca_write_file_atomic_flags(missing, "x", 1, 0600, CA_WRITE_NO_DIR_SYNC, &err), -ENOENT);
  cr_assert(strstr(err->msg, missing), "%s", err->msg);
  ca_error_free(err);
}

Test(fileio, atomic_write_refuses_to_follow_a_planted_temp_symlink) {
  char path[128], tmp[160], target[128];
  snprintf(path, sizeof(path), "%s/reg.json", dir);
  snprintf(target, sizeof(target), "%s/victim", dir);
  snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  cr_assert_eq(symlink(target, tmp), 0);
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_lt(ca_write_file_atomic(path, "x", 1, 0600, &err), 0);
  cr_assert_not_null(strstr(err->msg, path), "message names the file: %s", err->msg);
  cr_assert_eq(access(target, F_OK), -1, "the symlink target was not created");
}

Test(fileio, failed_write_keeps_old_file) {
  char path[128];
  snprintf(path, sizeof(path), "%s/missing-dir/reg.json", dir);
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_write_file_atomic(path, "x", 1, 0600, &err), -ENOENT);
  cr_assert_not_null(strstr(err->msg, "missing-dir"));
}

Test(fileio, read_cap_and_symlink_and_missing) {
  char path[128], link[128];
  snprintf(path, sizeof(path), "%s/big", dir);
  snprintf(link, sizeof(link), "%s/link", dir);
  char big[20000];
  memset(big, 'x', sizeof(big));
  cr_assert_eq(ca_write_file_atomic(path, big, sizeof(big), 0600, NULL), 0);
  char *data = NULL;
  size_t len;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ca_read_file(path, 19999, &data, &len, &err), -EFBIG);
  cr_assert_not_null(strstr(err->msg, "19999"));
  cr_assert_null(data);
  cr_assert_eq(ca_read_file(path, 20000, &data, &len, NULL), 0);
  cr_assert_eq(len, 20000);
  free(data);
  cr_assert_eq(symlink(path, link), 0);
  cr_assert_eq(ca_read_file(link, 1 << 20, &data, &len, &err), -ELOOP);
  cr_assert_not_null(strstr(err->msg, "symbolic link"));
  snprintf(path, sizeof(path), "%s/nope", dir);
  cr_assert_eq(ca_read_file(path, 10, &data, &len, NULL), -ENOENT);
}

Test(fileio, empty_file_reads_as_empty_string) {
  char path[128];
  snprintf(path, sizeof(path), "%s/empty", dir);
  cr_assert_eq(ca_write_file_atomic(path, "", 0, 0600, NULL), 0);
  char *data;
  size_t len = 9;
  cr_assert_eq(ca_read_file(path, 10, &data, &len, NULL), 0);
  cr_assert_str_eq(data, "");
  cr_assert_eq(len, 0);
  free(data);
}

Test(fileio, read_into_a_buffer_relative_to_a_directory) {
  char path[128];
  snprintf(path, sizeof(path), "%s/small", dir);
  cr_assert_eq(ca_write_file_atomic(path, "0123456789", 10, 0600, NULL), 0);
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  cr_assert_geq(dfd, 0);
  char buf[11];
  cr_assert_eq(ca_read_file_buf(dfd, "small", buf, sizeof(buf), NULL), 10);
  cr_assert_str_eq(buf, "0123456789");
  _cleanup_error_ ca_error *err = NULL;
  char tight[10];
  cr_assert_eq(ca_read_file_buf(dfd, "small", tight, sizeof(tight), &err), -EFBIG, "one byte short must not fit");
  cr_assert_not_null(strstr(err->msg, "9 bytes"), "%s", err->msg);
  char *data = NULL;
  size_t len = 0;
  cr_assert_eq(ca_read_file_at(dfd, "small", 10, &data, &len, NULL), 0);
  cr_assert_eq(len, 10);
  free(data);
  cr_assert_eq(symlinkat("small", dfd, "link"), 0);
  cr_assert_eq(ca_read_file_buf(dfd, "link", buf, sizeof(buf), NULL), -ELOOP);
  cr_assert_eq(ca_read_file_buf(dfd, "nope", buf, sizeof(buf), NULL), -ENOENT);
  close(dfd);
}

/* procfs answers a read with at most a page and the rest on the next one: the reader must keep reading. */
Test(fileio, reads_procfs_files_whole) {
  char *data = NULL;
  size_t len = 0;
  cr_assert_eq(ca_read_file("/proc/self/mountinfo", 1 << 20, &data, &len, NULL), 0);
  cr_assert_eq(strlen(data), len);
  cr_assert_gt(len, 0);
  cr_assert_eq(data[len - 1], '\n');
  free(data);
}

Test(fileio, write_all_to_files_and_sockets) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  cr_assert_eq(ca_write_all(sv[0], "hello", 5), 0);
  char buf[8] = "";
  cr_assert_eq(read(sv[1], buf, sizeof(buf)), 5);
  close(sv[1]);
  /* a peer that is gone: EPIPE, and no SIGPIPE that would kill the test */
  cr_assert_eq(ca_write_all(sv[0], "x", 1), -EPIPE);
  close(sv[0]);
  char path[128];
  snprintf(path, sizeof(path), "%s/written", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  cr_assert_geq(fd, 0);
  static char big[1 << 20];
  memset(big, 'y', sizeof(big));
  cr_assert_eq(ca_write_all(fd, big, sizeof(big)), 0);
  close(fd);
  char *data = NULL;
  size_t len = 0;
  cr_assert_eq(ca_read_file(path, sizeof(big), &data, &len, NULL), 0);
  cr_assert_eq(len, sizeof(big));
  free(data);
  cr_assert_eq(ca_write_all(-1, "x", 1), -EBADF);
}
