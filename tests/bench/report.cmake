# The benchmark report (issue 9): tests/bench/run-all.sh runs every benchmark and writes docs/BENCHMARKS.md. The
# ctest bench_report runs it with --quick into a temp file and checks that every table is there with figures
# (tests/bench/check_report.sh), so the script cannot rot. It measures, and it needs root, cgroups and an engine
# (DOCKER_HOST, else a private one it starts): label docker. Not RUN_SERIAL: it checks the chain, not the figures
# (run-all.sh without --quick on a quiet machine writes docs/BENCHMARKS.md), and alone it held a CI slot for 218 s.
# Not in the sanitizer build, where the benchmark binaries are instrumented and their timings mean nothing.
if(NOT AG_SANITIZE)
  add_test(NAME bench_report COMMAND ${CMAKE_CURRENT_LIST_DIR}/check_report.sh --run ${CMAKE_BINARY_DIR})
  set_tests_properties(bench_report PROPERTIES LABELS docker TIMEOUT 900)
endif()
