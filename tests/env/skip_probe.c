/* A suite with one test that passes and one that skips, for skips_are_loud (skips_are_loud.sh). Not a ctest test of
 * its own. */
#include <criterion/criterion.h>

/* Runs and passes: it has nothing to check, the run of it alone is skips_are_loud's run without a skip. */
Test(skip_probe, passes) {
}

Test(skip_probe, skips_on_this_host) {
  cr_skip_test("needs what this host lacks");
}
