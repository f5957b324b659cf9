# cmake/fuzz.cmake -- fuzz targets (tests/fuzz/fuzz_NAME.c), included from
# CMakeLists.txt when MODHOST_TESTS is on.  docs/fuzzing.md explains them.
#
# Two builds of the same targets:
#   - replay (default): each target with tests/fuzz/replay.c as its main,
#     registered as the CTest case fuzz.NAME, which runs it over
#     tests/fuzz/corpus/NAME/ and tests/fuzz/regressions/NAME/ (when it
#     has files).  Part of `make test`, under ASan + UBSan there.
#   - libFuzzer (-DMODHOST_FUZZ=ON, clang): each target linked with
#     -fsanitize=fuzzer,address,undefined; the library sources are
#     instrumented for coverage too.  scripts/fuzz (`make fuzz`) builds
#     the target `fuzz_targets` and runs them.  The CTest cases then replay
#     the corpora through libFuzzer itself (-runs=0).
#
# Targets call internal functions (mh_manifest_parse, mh_idx_parse, ...),
# which libmodhost.so hides, so they link the library's sources as a
# static library built like the modhost target: same sources, include
# directories, definitions and link libraries, read from that target, so
# the two cannot drift apart.

option(MODHOST_FUZZ "Build the fuzz targets with libFuzzer (clang)" OFF)

set(MH_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(MH_FUZZ_TIMEOUT 60)
file(GLOB MH_FUZZ_TARGET_SOURCES CONFIGURE_DEPENDS ${MH_FUZZ_DIR}/fuzz_*.c)
list(REMOVE_ITEM MH_FUZZ_TARGET_SOURCES ${MH_FUZZ_DIR}/fuzz_common.c)

if(MODHOST_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MODHOST_FUZZ needs clang (libFuzzer): configure "
      "with CC=clang, or run `make fuzz`")
  endif()
  if(MODHOST_SANITIZE OR MODHOST_TSAN)
    message(FATAL_ERROR "MODHOST_FUZZ brings its own sanitizers; leave "
      "MODHOST_SANITIZE and MODHOST_TSAN off")
  endif()
  set(MH_FUZZ_SAN -fsanitize=address,undefined -fno-sanitize-recover=undefined
      -fno-omit-frame-pointer)
  set(MH_FUZZ_LIB_FLAGS -fsanitize=fuzzer-no-link ${MH_FUZZ_SAN})
  set(MH_FUZZ_EXE_FLAGS -fsanitize=fuzzer ${MH_FUZZ_SAN})
else()
  # Replay: whatever the build uses (ASan + UBSan under `make test`).
  set(MH_FUZZ_LIB_FLAGS)
  set(MH_FUZZ_EXE_FLAGS)
endif()

# The library, statically, with every symbol visible to the targets.
get_target_property(mh_fuzz_sources modhost SOURCES)
get_target_property(mh_fuzz_includes modhost INCLUDE_DIRECTORIES)
get_target_property(mh_fuzz_defs modhost COMPILE_DEFINITIONS)
get_target_property(mh_fuzz_libs modhost LINK_LIBRARIES)
add_library(modhost_fuzzlib STATIC EXCLUDE_FROM_ALL ${mh_fuzz_sources})
target_include_directories(modhost_fuzzlib PUBLIC ${mh_fuzz_includes})
target_compile_definitions(modhost_fuzzlib PRIVATE ${mh_fuzz_defs})
target_link_libraries(modhost_fuzzlib PUBLIC ${mh_fuzz_libs})
target_compile_options(modhost_fuzzlib PRIVATE ${MH_FUZZ_LIB_FLAGS})
set_target_properties(modhost_fuzzlib PROPERTIES
  C_VISIBILITY_PRESET default
  ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)

# Every target, for scripts/fuzz.  Replay builds are also part of the
# default build (and so of `make test`); libFuzzer builds only of this.
add_custom_target(fuzz_targets)

foreach(src ${MH_FUZZ_TARGET_SOURCES})
  get_filename_component(base ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" name ${base})
  set(exe fuzz-${name})
  if(MODHOST_FUZZ)
    add_executable(${exe} EXCLUDE_FROM_ALL ${src} ${MH_FUZZ_DIR}/fuzz_common.c)
    target_compile_options(${exe} PRIVATE ${MH_FUZZ_EXE_FLAGS})
    target_link_options(${exe} PRIVATE ${MH_FUZZ_EXE_FLAGS})
  else()
    add_executable(${exe} ${src} ${MH_FUZZ_DIR}/fuzz_common.c
                   ${MH_FUZZ_DIR}/replay.c)
  endif()
  target_compile_definitions(${exe} PRIVATE _GNU_SOURCE)
  target_include_directories(${exe} PRIVATE ${MH_FUZZ_DIR} ${CMAKE_SOURCE_DIR})
  target_link_libraries(${exe} PRIVATE modhost_fuzzlib Threads::Threads)
  set_target_properties(${exe} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  add_dependencies(fuzz_targets ${exe})

  # The replay: the seed corpus, and the regressions when there are any
  # (the glob re-runs CMake when one is added).
  set(inputs ${MH_FUZZ_DIR}/corpus/${name})
  file(GLOB regressions CONFIGURE_DEPENDS ${MH_FUZZ_DIR}/regressions/${name}/*)
  if(regressions)
    list(APPEND inputs ${MH_FUZZ_DIR}/regressions/${name})
  endif()
  if(MODHOST_FUZZ)
    # libFuzzer runs the inputs and stops; it writes nothing back.
    add_test(NAME fuzz.${name} COMMAND ${exe} -runs=0 -timeout=10 ${inputs})
  else()
    add_test(NAME fuzz.${name} COMMAND ${exe} ${inputs})
  endif()
  set_tests_properties(fuzz.${name} PROPERTIES TIMEOUT ${MH_FUZZ_TIMEOUT})
endforeach()
