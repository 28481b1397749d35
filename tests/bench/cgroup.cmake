# Benchmark of the cgroup module: kill-to-empty against bare cgroup.kill, kill -- -PGID and timeout -s KILL
# survivors, per-spawn overhead. Needs root and a cgroup2 mount: sudo build/tests/bench/bench_cgroup
add_executable(bench_cgroup ${CMAKE_CURRENT_LIST_DIR}/bench_cgroup.c ${PROJECT_SOURCE_DIR}/tests/cgroup/helper.c
                            ${PROJECT_SOURCE_DIR}/tests/cgroup/live.c)
target_include_directories(bench_cgroup PRIVATE ${PROJECT_SOURCE_DIR}/tests/cgroup)
target_link_libraries(bench_cgroup PRIVATE cgroup common ag_flags)
