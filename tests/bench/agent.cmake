# Benchmarks of the agent binary: bench_run overhead | soak.
add_executable(bench_run ${CMAKE_CURRENT_LIST_DIR}/bench_run.c)
target_link_libraries(bench_run PRIVATE ag_flags)
target_compile_definitions(bench_run PRIVATE AG_BINARY="$<TARGET_FILE:cleanup-agent>")
add_dependencies(bench_run cleanup-agent)
