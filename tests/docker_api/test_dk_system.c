/* The answers of /system/df, /images/json and /networks as the engine writes them (20.10's shapes), and what is not
 * one: parsers of untrusted text fail with an error, never a crash. */
#include <criterion/criterion.h>
#include <string.h>

#include "docker-internal.h"

#define DF                                                                                                             \
  "{\"LayersSize\":1092588,\"Images\":[{\"Containers\":1,\"Created\":1700000000,\"Id\":\"sha256:aa\","                 \
  "\"Labels\":{\"io.cleanup-agent.session\":\"dd\"},\"ParentId\":\"\",\"RepoDigests\":null,"                           \
  "\"RepoTags\":[\"x:1\"],\"SharedSize\":100,\"Size\":1000,\"VirtualSize\":1000},"                                     \
  "{\"Containers\":0,\"Created\":1700000001,\"Id\":\"sha256:bb\",\"Labels\":null,\"RepoTags\":[\"<none>:<none>\"],"    \
  "\"SharedSize\":-1,\"Size\":5}],"                                                                                    \
  "\"Containers\":[{\"Id\":\"c1\",\"ImageID\":\"sha256:aa\",\"State\":\"exited\",\"SizeRw\":12,\"Labels\":{}}],"       \
  "\"Volumes\":[],\"BuildCache\":[{\"ID\":\"r1\",\"Size\":300},{\"ID\":\"r2\",\"Size\":200}]}"

Test(system, df_gives_images_with_their_users_containers_and_the_build_cache_total) {
  struct dk_df *df = NULL;
  ca_error *err = NULL;
  cr_assert_eq(dk_parse_df(DF, strlen(DF), &df, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq(df->images->n, 2);
  cr_assert_str_eq(df->images->v[0].id, "sha256:aa");
  cr_assert_eq(df->images->v[0].containers, 1);
  cr_assert_eq(df->images->v[0].size - df->images->v[0].shared_size, 900);
  cr_assert_str_eq(dk_labels_get(&df->images->v[0].labels, "io.cleanup-agent.session"), "dd");
  cr_assert_eq(df->images->v[1].shared_size, -1, "unknown");
  cr_assert_eq(df->n_containers, 1);
  cr_assert_str_eq(df->containers[0].image_id, "sha256:aa");
  cr_assert_eq(df->containers[0].size_rw, 12);
  cr_assert_eq(df->build_cache_size, 500);
  dk_df_free(df);
}

Test(system, what_is_not_a_df_answer_is_an_error) {
  const char *bad[] = {"[]",
                       "{\"Images\":{}}",
                       "{\"Images\":[{\"Id\":1}]}",
                       "{\"Containers\":[{}]}",
                       "{\"BuildCache\":[{\"Size\":\"big\"}]}",
                       "{\"Images\":[{\"Id\":\"a\",\"Size\":-5}]}",
                       "{"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct dk_df *df = NULL;
    ca_error *err = NULL;
    cr_expect_lt(dk_parse_df(bad[i], strlen(bad[i]), &df, &err), 0, "%s parsed", bad[i]);
    cr_expect_null(df);
    ca_error_free(err);
  }
}

Test(system, network_pools_count_the_networks_with_an_ipam_config) {
  const char *nets =
      "[{\"Name\":\"bridge\",\"IPAM\":{\"Config\":[{\"Subnet\":\"172.17.0.0/16\"}]}},"
      "{\"Name\":\"host\",\"IPAM\":{\"Config\":[]}},{\"Name\":\"none\",\"IPAM\":{\"Config\":null}},"
      "{\"Name\":\"e2e\",\"IPAM\":{\"Driver\":\"default\",\"Config\":[{\"Subnet\":\"172.18.0.0/16\"}]}}]";
  unsigned n = 0;
  cr_assert_eq(dk_parse_network_pools(nets, strlen(nets), &n, NULL), 0);
  cr_assert_eq(n, 2);
  ca_error *err = NULL;
  cr_assert_lt(dk_parse_network_pools("[{\"IPAM\":[]}]", 13, &n, &err), 0);
  ca_error_free(err);
}
