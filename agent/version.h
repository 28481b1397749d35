/* `cleanup-agent --version`: the version, the libcurl it runs with and the features of this build. */
#pragma once

#include <stdio.h>

/* Prints the version lines to f. */
void ag_print_version(FILE *f);
