# Benchmark of container-seq against a shell loop of `docker run --rm` (issue 6): bench_container_seq [FILES] [REPS].
add_executable(bench_container_seq ${CMAKE_CURRENT_LIST_DIR}/bench_container_seq.c)
target_link_libraries(bench_container_seq PRIVATE ag_flags)
target_compile_definitions(bench_container_seq PRIVATE AG_BINARY="$<TARGET_FILE:cleanup-agent>")
add_dependencies(bench_container_seq cleanup-agent)
