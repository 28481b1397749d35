# Docker labeling proxy benchmark: docker ps / docker run --rm and raw /_ping round trips, direct vs through the
# proxy (agent/proxy/proxy.c), interleaved medians. Run: DOCKER_HOST=unix:///... build/tests/bench/bench_proxy [--reps 30]
add_executable(bench_proxy ${CMAKE_CURRENT_LIST_DIR}/bench_proxy.c)
target_link_libraries(bench_proxy PRIVATE agent_core ag_flags)

# The raw exchanges' HTTP reader (bench_http.h) against canned answers: a unit test, since a reader that misreads an
# answer makes bench_proxy wait for bytes that never come.
ag_add_criterion_test(NAME unit_bench_http SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bench_http.c LIBS Threads::Threads
                      LABELS unit TIMEOUT 60)
target_include_directories(unit_bench_http PRIVATE ${CMAKE_CURRENT_LIST_DIR})
