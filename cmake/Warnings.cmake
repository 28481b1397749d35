# Compile flags shared by every target of the project, carried by the interface target ag_flags.
add_library(ag_flags INTERFACE)
target_compile_options(ag_flags INTERFACE
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wwrite-strings
  -fstack-protector-strong)
target_compile_definitions(ag_flags INTERFACE _GNU_SOURCE)
if(NOT CMAKE_BUILD_TYPE STREQUAL "Debug" AND NOT AG_SANITIZE)
  target_compile_definitions(ag_flags INTERFACE _FORTIFY_SOURCE=2)
endif()
target_include_directories(ag_flags INTERFACE ${CMAKE_BINARY_DIR}/generated)
if(AG_WERROR)
  target_compile_options(ag_flags INTERFACE -Werror)
endif()
if(AG_SANITIZE)
  target_compile_options(ag_flags INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all
                                            -fno-omit-frame-pointer)
  target_link_options(ag_flags INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
