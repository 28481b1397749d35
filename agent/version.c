/* `cleanup-agent --version`. The version is CMake's project() version (config.h); libcurl is the one loaded at run
 * time (apt upgrades it under the binary), with the one the build saw next to it; the features are this build's. */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>

#include "agent.h"
#include "config.h"
#include "version.h"

struct ag_feature {
  const char *name;
  bool built;
};

/* One line per feature, in the order --version prints them: "+name" when built in, "-name" when not. */
static const struct ag_feature features[] = {
    {"proxy", true},          /* the labeling Docker proxy of run and container-seq --docker-proxy */
    {"systemd-driver", true}, /* cgroup/systemd.c: sd-bus (libsystemd) is a build dependency */
};

void ag_print_version(FILE *f) {
  const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
  fprintf(f, AG_PROGRAM " " AG_VERSION "\n");
  fprintf(f, "libcurl %s%s%s (built with %s)\n", curl->version, curl->ssl_version ? ", " : "",
          curl->ssl_version ? curl->ssl_version : "", LIBCURL_VERSION);
  fprintf(f, "features:");
  for (size_t i = 0; i < ELEMENTSOF(features); i++)
    fprintf(f, " %c%s", features[i].built ? '+' : '-', features[i].name);
  fputc('\n', f);
}
