# docker_api benchmark: bulk removal and create+start+wait+remove cycles against the real engine, dk_ vs the docker
# CLI (/usr/bin/docker, Debian's 20.10, by default). Run: build/tests/bench/bench_docker [--reps 3]
add_executable(bench_docker ${CMAKE_CURRENT_LIST_DIR}/bench_docker.c)
target_link_libraries(bench_docker PRIVATE docker_api ag_flags)
