# Thin wrapper over CMake so that the README's two commands stay two words.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)
DEMO_OUT   ?= demo-out

.PHONY: all deps build build-asan build-tsan demo check check-fast bench clean

all: build

# Which package groups of scripts/deps.sh to install, and whether the release
# tree builds the test suite: `make demo` installs only what cbctiq needs to
# build and run; check adds the test group, bench the benchmark peers. (A
# target's value here also holds for the targets it depends on.)
DEPS  = build
TESTS = OFF
check check-fast: DEPS = build test
check check-fast: TESTS = ON
bench: DEPS = build bench

deps:
	@scripts/deps.sh $(DEPS)

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCBQ_TESTS=$(TESTS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DCBQ_SANITIZE=address,undefined -DCBQ_TESTS=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)

# ThreadSanitizer needs clang: GCC's libgomp is not TSan-aware, while LLVM's
# libomp with its Archer tool tells TSan about OpenMP's barriers and tasks.
build-tsan: deps
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang-14 \
	       -DCMAKE_CXX_COMPILER=clang++-14 -DCBQ_SANITIZE=thread -DCBQ_TESTS=ON >/dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS)

# The main job: the whole study on the built-in cohort.
demo: build
	@scripts/demo.sh $(BUILD) $(DEMO_OUT)

# Tests run JOBS at a time, each with its own OpenMP team: idle OpenMP threads
# sleep instead of spinning, so that parallel tests do not starve each other.
check check-fast: export OMP_WAIT_POLICY = passive

# The whole test suite: the release build, then again under ASan + UBSan,
# then the threaded tests under ThreadSanitizer (any report fails the test).
TSAN_ENV = OMP_TOOL_LIBRARIES=/usr/lib/llvm-14/lib/libarcher.so \
           TSAN_OPTIONS="halt_on_error=1 exitcode=66 ignore_noninstrumented_modules=1"
check: build build-asan build-tsan
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	@ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS) -LE nosan
	@$(TSAN_ENV) ctest --test-dir $(BUILD_TSAN) --output-on-failure -j $(JOBS) -L threads -LE nosan

# Release build only: for quick iteration.
check-fast: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

bench: build
	@scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)
