/* The standalone driver of the fuzz targets in normal builds (gcc, or ASan+UBSan): feeds every file of the given
 * directories to LLVMFuzzerTestOneInput, so the seed corpus and every crash kept in regressions/ run as a unit test.
 *
 *   fuzz_<name>_replay CORPUS_DIR [MORE_DIR...]
 *
 * CORPUS_DIR must exist and hold at least one input (a vanished corpus is a failure, not a pass); further
 * directories (regressions/<name>/) may be absent. Files whose names start with '.' are skipped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_all(const char *path, uint8_t **ret, size_t *ret_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  size_t len = (size_t)st.st_size, got = 0;
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) {
    close(fd);
    return -ENOMEM;
  }
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      free(buf);
      close(fd);
      return -e;
    }
    got += (size_t)n;
  }
  close(fd);
  *ret = buf;
  *ret_len = len;
  return 0;
}

/* Replays every file of dir; returns the count, or -1 after a message. */
static long replay_dir(const char *prog, const char *dir, int required) {
  DIR *d = opendir(dir);
  if (!d) {
    if (!required && errno == ENOENT)
      return 0;
    fprintf(stderr, "%s: cannot open %s: %s\n", prog, dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char **grown = realloc(names, (n + 1) * sizeof(*names));
    if (!grown || !(grown[n] = strdup(e->d_name))) {
      fprintf(stderr, "%s: out of memory\n", prog);
      exit(1);
    }
    names = grown;
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof(*names), name_cmp);
  long count = 0;
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    uint8_t *data = NULL;
    size_t len = 0;
    int k = read_all(path, &data, &len);
    if (k < 0) {
      fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(-k));
      count = -1;
    } else {
      fprintf(stderr, "%s: %s (%zu bytes)\n", prog, path, len);
      LLVMFuzzerTestOneInput(data, len);
      free(data);
      if (count >= 0)
        count++;
    }
    free(names[i]);
  }
  free(names);
  if (required && count == 0) {
    fprintf(stderr, "%s: %s holds no input: the seed corpus is missing\n", prog, dir);
    return -1;
  }
  return count;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR [MORE_DIR...]\n", argv[0]);
    return 2;
  }
  long total = 0;
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    long n = replay_dir(argv[0], argv[i], i == 1);
    if (n < 0)
      rc = 1;
    else
      total += n;
    printf("%s: %ld inputs from %s\n", argv[0], n < 0 ? 0 : n, argv[i]);
  }
  printf("%s: replayed %ld inputs without a crash\n", argv[0], total);
  return rc;
}
