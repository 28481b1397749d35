/* The label a test puts on every resource it creates itself, so that its teardown removes them (and nothing else).
 * It has a namespace of its own: the product reads io.cleanup-agent.* and never this one, and a user's --label in
 * the product's namespace is refused, so tests must not use it. Shell scripts read the two lines below
 * (tests/run-lib.sh, tests/deploy/test_image.sh): keep them one literal each. */
#pragma once

#define AG_TEST_LABEL_NS "io.cleanup-agent-tests."
#define AG_TEST_LABEL_KEY AG_TEST_LABEL_NS "id"
