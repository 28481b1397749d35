#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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
