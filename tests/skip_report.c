/* Linked into every Criterion suite (ag_criterion, tests/CMakeLists.txt). Criterion counts a skipped test neither as
 * passed nor as failed, says nothing of it in its default output and exits 0, so ctest shows the suite as passed. This
 * hook says each skip in one line, which tests/run.sh finds in ctest's log (reject_skips, tests/run-lib.sh). */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>

/* Its mark in each binary: skips_are_loud checks that every Criterion suite of the build has it. */
__attribute__((used)) const char ag_skip_report_mark[] = "criterion: skipped";

ReportHook(POST_TEST)(struct criterion_test_stats *stats) {
  if (stats->test_status != CR_STATUS_SKIPPED)
    return;
  fprintf(stderr, "criterion: skipped %s::%s: %s\n", stats->test->category, stats->test->name,
          stats->message ? stats->message : "(no reason given)");
}
