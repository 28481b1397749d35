/* For tests of a command's options without running it: a writable argv as main gets it, only the variables a case
 * sets, and what a parser says on stdout and stderr. Static functions: each suite that includes it is one file. */
#pragma once

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A writable argv (getopt may permute it) of name and the NULL-terminated args; options point into it, and the test
 * process exits soon: not freed. */
static char **said_argv(const char *name, const char *const *args, int *ret_argc) {
  int n = 0;
  while (args[n])
    n++;
  char **v = calloc((size_t)n + 2, sizeof(char *));
  v[0] = strdup(name);
  for (int i = 0; i < n; i++)
    v[i + 1] = strdup(args[i]);
  *ret_argc = n + 1;
  return v;
}

/* Of the n variables in names, only those of kv ("K=V" each, NULL-terminated) set. */
static void said_env(const char *const *names, size_t n, const char *const *kv) {
  for (size_t i = 0; i < n; i++)
    unsetenv(names[i]);
  for (size_t i = 0; kv && kv[i]; i++)
    putenv((char *)kv[i]);
}

/* A bad input of a parser's table-driven test: the variables it sets, its arguments and the one line it gives. */
struct said_bad {
  const char *env[3];  /* "K=V" each, NULL-terminated */
  const char *args[5]; /* NULL-terminated */
  const char *line;
};

/* stdout and stderr sent to files between said_begin and said_end. */
struct said {
  FILE *out, *err;
  int saved_out, saved_err;
};

static void said_begin(struct said *s) {
  s->out = tmpfile();
  s->err = tmpfile();
  cr_assert(s->out && s->err);
  fflush(stdout);
  fflush(stderr);
  s->saved_out = dup(STDOUT_FILENO);
  s->saved_err = dup(STDERR_FILENO);
  dup2(fileno(s->out), STDOUT_FILENO);
  dup2(fileno(s->err), STDERR_FILENO);
}

/* Everything f got, as text (at most size - 1 bytes). */
static void said_read(FILE *f, char *ret, size_t size) {
  rewind(f);
  size_t n = fread(ret, 1, size - 1, f);
  ret[n] = '\0';
  fclose(f);
}

/* stdout and stderr back, and what went to each since said_begin in out and err. */
static void said_end(struct said *s, char *out, char *err, size_t size) {
  fflush(stdout);
  fflush(stderr);
  dup2(s->saved_out, STDOUT_FILENO);
  dup2(s->saved_err, STDERR_FILENO);
  close(s->saved_out);
  close(s->saved_err);
  said_read(s->out, out, size);
  said_read(s->err, err, size);
}
