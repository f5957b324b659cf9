# Thin wrapper over CMake/CTest.  `make run` and `make test` work from a
# fresh Debian machine: they install what is missing first (apt).
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
BUILD       ?= build/release
TEST_BUILD  ?= build/asan
CMAKE_FLAGS ?=

.PHONY: all deps build run test clean

all: build

deps:
	@./scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DMODHOST_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The demo: the bundled plugins through the modhost command.
run: build
	@./scripts/demo $(BUILD)

# Every test, built with AddressSanitizer + UndefinedBehaviorSanitizer and
# warnings as errors.
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	      -DMODHOST_SANITIZE=ON -DMODHOST_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(TEST_BUILD) -j$(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j$(JOBS)

clean:
	rm -rf build
