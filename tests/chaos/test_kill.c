/* SIGKILL of the agent at random moments of `run` and `container-seq`: with its guardian left to clean up, and with
 * the guardian killed too (the whole CI job's cgroup killed), followed by the next start's collection. Five trials
 * run side by side, each in its own state dir, cgroup root and test label; each trial's moment comes from the seeded
 * PRNG. A trial "left something" when any of its processes, containers, networks, volumes, cgroups, state files or
 * /dev/shm segments is still there once the guardian exited (or the next start returned). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos.h"
#include "cgroup.h"
#include "session.h"

#define SLOTS 10
#define TRIALS_DEFAULT 30
#define IMAGE "cleanup-test/busybox:latest"

enum mode { MODE_RUN, MODE_SEQ };
enum variant { KILL_AGENT, KILL_JOB };

struct slot {
  struct scenario sc;
  char job[256]; /* the trial's "CI job" cgroup: the runner, the agent and the guardian */
  char tag[48];  /* CHAOS_TAG of the trial */
  char mount[160];
  pid_t runner;
  int rfd;
  int delay_ms;
};

/* What a runner tells the test before it kills. */
struct runner_msg {
  pid_t agent;
  uint64_t start;
  bool alive; /* the agent was still running at the chosen moment */
  int status; /* its wait status when it was not */
};

static struct slot slots[SLOTS];

static void setup(void) {
  for (int i = 0; i < SLOTS; i++) {
    scenario_setup(&slots[i].sc);
    snprintf(slots[i].mount, sizeof(slots[i].mount), "%.64s:/out", slots[i].sc.dir);
  }
}
static void teardown(void) {
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].job[0])
      (void)rmdir(slots[i].job);
    scenario_teardown(&slots[i].sc);
  }
}

TestSuite(kill, .init = setup, .fini = teardown, .timeout = 600 * AG_TIMEOUT_SCALE);

/* The command of a run trial leaks everything it can, labeled with its session and the slot's test label. */
static const char run_body[] = "L=\"--label io.cleanup-agent.session=$CLEANUP_AGENT_SESSION --label $TEST_LABEL\"\n"
                               "echo segment > /dev/shm/chaos-$CHAOS_TAG\n"
                               "( trap '' TERM; sleep 1000 & ) &\n"
                               "setsid sh -c 'trap \"\" TERM HUP; sleep 1000' &\n"
                               "docker run -d --network none $L " IMAGE " sleep 1000 >/dev/null || exit 90\n"
                               "docker network create --internal $L net-$CLEANUP_AGENT_SESSION >/dev/null || exit 91\n"
                               "docker volume create $L >/dev/null || exit 92\n"
                               "sleep 0.8\n";

static const char **trial_args(struct slot *sl, enum mode m) {
  static const char *run_args[] = {"run", "--private-tmp", "--grace", "500ms", "--", NULL, NULL};
  static const char *seq_args[] = {
      "container-seq", "--image", IMAGE,  "--network", "none", "--mount", NULL, "--workdir",
      "/out",          "a.sh",    "b.sh", "c.sh",      "--",   "sh",      "{}", NULL};
  if (m == MODE_RUN) {
    run_args[5] = scenario_script(&sl->sc, "leak.sh", run_body);
    return run_args;
  }
  seq_args[6] = sl->mount;
  return seq_args;
}

/* The runner: a child subreaper, so that the guardian and every orphan of the tree become its children and "no
 * child left" means "all gone". It starts the agent, waits for the moment, and kills. */
static _Noreturn void runner(struct slot *sl, enum mode m, enum variant v, int wfd) {
  (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
  alarm(90); /* a guardian that never finishes shows as a runner killed by SIGALRM */
  if (v == KILL_JOB) {
    char procs[300];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", sl->job);
    FILE *f = fopen(procs, "w");
    if (!f || fprintf(f, "0\n") < 0 || fclose(f) != 0)
      _exit(97);
  }
  setenv("CHAOS_TAG", sl->tag, 1);
  struct runner_msg msg = {.agent = scenario_start(&sl->sc, trial_args(sl, m))};
  (void)cg_proc_start_time(NULL, msg.agent, &msg.start, NULL);
  chaos_sleep_ms(sl->delay_ms);
  int st;
  msg.alive = waitpid(msg.agent, &st, WNOHANG) == 0;
  msg.status = msg.alive ? 0 : st;
  if (write(wfd, &msg, sizeof(msg)) != sizeof(msg))
    _exit(98);
  if (v == KILL_JOB) {
    char kill_path[300];
    snprintf(kill_path, sizeof(kill_path), "%s/cgroup.kill", sl->job);
    FILE *f = fopen(kill_path, "w");
    if (f) {
      fputs("1", f);
      fclose(f); /* kills this runner too */
    }
    _exit(96);
  }
  if (msg.alive)
    kill(msg.agent, SIGKILL); /* our own child, not reaped yet: its pid cannot have been reused */
  while (waitpid(-1, &st, 0) > 0 || errno == EINTR)
    ;
  _exit(0);
}

static void run_trials(const char *scenario, enum mode m, enum variant v, int max_delay_ms) {
  if (m == MODE_SEQ)
    for (int i = 0; i < SLOTS; i++)
      for (const char *const *f = (const char *[]){"a.sh", "b.sh", "c.sh", NULL}; *f; f++) {
        char path[256];
        snprintf(path, sizeof(path), "%.64s/%s", slots[i].sc.dir, *f);
        FILE *fp = fopen(path, "w");
        cr_assert_not_null(fp);
        fputs("echo start; sleep 0.3; echo done\n", fp);
        fclose(fp);
      }
  int left = 0, alive = 0, trial = 0;
  const int TRIALS = getenv("CHAOS_TRIALS") ? atoi(getenv("CHAOS_TRIALS")) : TRIALS_DEFAULT;
  struct chaos_owner owners[SLOTS];
  while (trial < TRIALS) {
    int n = TRIALS - trial < SLOTS ? TRIALS - trial : SLOTS;
    for (int i = 0; i < n; i++) {
      struct slot *sl = &slots[i];
      sl->delay_ms = (int)chaos_rand((uint64_t)max_delay_ms + 1);
      snprintf(sl->tag, sizeof(sl->tag), "%d-%d-%d", (int)getpid(), (int)v, trial + i);
      if (v == KILL_JOB) {
        /* A job cgroup of its own for every trial, as every CI job has. */
        if (sl->job[0])
          (void)rmdir(sl->job); /* emptied by the previous trial's kill */
        char name[64];
        snprintf(name, sizeof(name), "chaos-job-%d-%d", (int)getpid(), trial + i);
        chaos_job_cgroup(&sl->sc, name, sl->job, sizeof(sl->job));
      }
      int p[2];
      cr_assert_eq(pipe(p), 0);
      sl->runner = fork();
      cr_assert_geq(sl->runner, 0);
      if (sl->runner == 0) {
        close(p[0]);
        runner(sl, m, v, p[1]);
      }
      close(p[1]);
      sl->rfd = p[0];
    }
    for (int i = 0; i < n; i++) {
      struct slot *sl = &slots[i];
      struct runner_msg msg = {0};
      ssize_t got = read(sl->rfd, &msg, sizeof(msg));
      close(sl->rfd);
      int rc = scenario_wait(sl->runner);
      cr_assert_eq(got, (ssize_t)sizeof(msg), "trial %d: the runner failed before the kill (exit %d): %s", trial + i,
                   rc, scenario_stderr(&sl->sc));
      cr_assert(rc == 0 || (v == KILL_JOB && rc == 128 + SIGKILL), "trial %d: runner exit %d (142: timed out)",
                trial + i, rc);
      alive += msg.alive;
      chaos_owner_of(msg.agent, msg.start, &owners[i]);
      if (v == KILL_JOB) {
        char events[300];
        snprintf(events, sizeof(events), "%s/cgroup.events", sl->job);
        for (int w = 0; w < 250 && !strstr(scenario_read_text(events), "populated 0"); w++)
          chaos_sleep_ms(20);
        if (getenv("CHAOS_DEBUG") && !msg.alive)
          fprintf(stderr, "trial %d: agent gone before its moment (status 0x%x); it said: %s\n", trial + i, msg.status,
                  scenario_stderr(&sl->sc));
        /* The next start on this host: its collection of dead sessions is cleanup layer 4. */
        int next = scenario_run(&sl->sc, (const char *[]){"run", "--", "true", NULL});
        cr_assert_eq(next, 0, "trial %d: the next start exited %d: %s", trial + i, next, scenario_stderr(&sl->sc));
      }
    }
    /* The next start hands a busy dead session to a guardian that watches 10 s for late creates: wait for it. */
    for (int i = 0; v == KILL_JOB && i < n; i++)
      for (int w = 0; w < 200 && scenario_count_state_files(&slots[i].sc) > 0; w++)
        chaos_sleep_ms(100);
    for (int i = 0; i < n; i++) {
      struct slot *sl = &slots[i];
      struct chaos_left l;
      chaos_count_left(&sl->sc, sl->tag, &owners[i], &l);
      if (chaos_left_total(&l)) {
        char what[256];
        left++;
        fprintf(stderr, "chaos: %s: trial %d (kill at %d ms, agent %s) left %s; agent said:\n%s\n", scenario, trial + i,
                sl->delay_ms, owners[i].pid_label, chaos_left_describe(&l, what, sizeof(what)),
                scenario_stderr(&sl->sc));
        chaos_sweep(&sl->sc, sl->tag, &owners[i]);
      }
    }
    trial += n;
  }
  /* A create in flight when the agent died lands late: look once more at the last trials, a while after. */
  chaos_sleep_ms(2000);
  for (int i = 0; i < SLOTS && i < TRIALS; i++) {
    struct chaos_left l;
    chaos_count_left(&slots[i].sc, slots[i].tag, &owners[i], &l);
    if (chaos_left_total(&l)) {
      char what[256];
      left++;
      fprintf(stderr, "chaos: %s: slot %d left %s late\n", scenario, i, chaos_left_describe(&l, what, sizeof(what)));
      chaos_sweep(&slots[i].sc, slots[i].tag, &owners[i]);
    }
  }
  chaos_report(scenario, trial, left, "%d of %d kills landed while the agent ran (moments 0-%d ms)", alive, trial,
               max_delay_ms);
  cr_expect_eq(left, 0, "%s: %d of %d trials left something behind", scenario, left, trial);
  cr_expect_geq(alive, trial / 4, "%s: only %d kills landed while the agent ran: moments need re-sizing", scenario,
                alive);
}

Test(kill, run_agent_sigkilled_guardian_cleans) {
  run_trials("run: SIGKILL of the agent, the guardian cleans", MODE_RUN, KILL_AGENT, 2500);
}

Test(kill, run_agent_and_guardian_killed_next_start_collects) {
  run_trials("run: agent and guardian killed (job cgroup), the next start collects", MODE_RUN, KILL_JOB, 2500);
}

Test(kill, container_seq_agent_sigkilled_guardian_cleans) {
  run_trials("container-seq: SIGKILL of the agent, the guardian cleans", MODE_SEQ, KILL_AGENT, 3000);
}

Test(kill, container_seq_agent_and_guardian_killed_next_start_collects) {
  run_trials("container-seq: agent and guardian killed (job cgroup), the next start collects", MODE_SEQ, KILL_JOB,
             3000);
}
