# Docker labeling proxy benchmark: docker ps / docker run --rm and raw /_ping round trips, direct vs through the
# proxy (agent/proxy/proxy.c), interleaved medians. Run: DOCKER_HOST=unix:///... build/tests/bench/bench_proxy [--reps 30]
add_executable(bench_proxy ${CMAKE_CURRENT_LIST_DIR}/bench_proxy.c)
target_link_libraries(bench_proxy PRIVATE agent_core ag_flags)
