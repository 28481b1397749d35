# Compile flags shared by every target of the project, carried by the interface target ag_flags.
add_library(ag_flags INTERFACE)
target_compile_options(ag_flags INTERFACE
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wwrite-strings
  -fstack-protector-strong)
target_compile_definitions(ag_flags INTERFACE _GNU_SOURCE)
if(NOT CMAKE_BUILD_TYPE STREQUAL "Debug" AND NOT AG_SANITIZE AND NOT AG_FUZZ)
  target_compile_definitions(ag_flags INTERFACE _FORTIFY_SOURCE=2)
endif()
# Debian's hardening (dpkg-buildflags with hardening=+all): stack clash and control-flow protection where the compiler
# has them, full RELRO with immediate binding, position-independent executables.
include(CheckCCompilerFlag)
foreach(flag -fstack-clash-protection -fcf-protection)
  string(MAKE_C_IDENTIFIER "AG_HAS${flag}" var)
  check_c_compiler_flag(${flag} ${var})
  if(${var})
    target_compile_options(ag_flags INTERFACE ${flag})
  endif()
endforeach()
target_link_options(ag_flags INTERFACE LINKER:-z,relro LINKER:-z,now)
include(CheckPIESupported)
check_pie_supported()
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
target_include_directories(ag_flags INTERFACE ${CMAKE_BINARY_DIR}/generated)
if(AG_WERROR)
  target_compile_options(ag_flags INTERFACE -Werror)
endif()
if(AG_SANITIZE)
  target_compile_options(ag_flags INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all
                                            -fno-omit-frame-pointer)
  target_link_options(ag_flags INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
if(AG_FUZZ)
  # libFuzzer (tests/fuzz/): every object carries coverage instrumentation, ASan and UBSan; the fuzz targets add
  # -fsanitize=fuzzer at link time for libFuzzer's main.
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "AG_FUZZ needs clang: cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DAG_FUZZ=ON")
  endif()
  target_compile_options(ag_flags INTERFACE -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                                            -fno-omit-frame-pointer -g)
  target_link_options(ag_flags INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all)
  # clang, unlike gcc, flags the va_list formats of error.c's ca_error_set helpers.
  target_compile_options(ag_flags INTERFACE -Wno-format-nonliteral)
endif()
