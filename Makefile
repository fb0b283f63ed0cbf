# flashchat — build, test and benchmark entry points. `make help` lists the targets.
# Everything runs through ./flashchat's bun (found on PATH or bootstrapped locally with npm).

BUN := $(shell command -v bun 2>/dev/null || echo ./.cache/bun/node_modules/.bin/bun)

.PHONY: all deps engine engine-asan engine-tsan cross cross-test test check bench mac-check demo clean help

all: deps engine ## install dependencies and build the engine (default)

deps: node_modules/.flashchat-installed ## install JS dependencies (bun install --frozen-lockfile)

node_modules/.flashchat-installed: package.json bun.lock
	@sh ./flashchat --bootstrap-only

engine: ## build the native engine into native/build/ (says whether it compiled or was up to date)
	@if $(MAKE) -q -s --no-print-directory -C native 2>/dev/null; then \
		echo "engine: native/build/flashchat-engine is up to date"; \
	else \
		echo "engine: compiling the C engine and its tests into native/build/ (a minute or two the first time)..."; \
		$(MAKE) -s --no-print-directory -C native && echo "engine: built native/build/flashchat-engine"; \
	fi

engine-asan: ## build the engine with AddressSanitizer + UBSan (native/build/asan/)
	@$(MAKE) -C native asan

engine-tsan: ## build the engine and the pool stress test with ThreadSanitizer (native/build/tsan/)
	@$(MAKE) -C native tsan

cross: ## arm64 builds from x86-64 Linux: Linux (static, run by qemu-aarch64) and macOS (zig cc), warnings as errors
	@$(MAKE) -s --no-print-directory -C native cross

cross-test: deps engine cross ## the arm64 checks under qemu, whole set (make test runs a focused subset)
	@FLASHCHAT_CROSS_FULL=1 $(BUN) test --timeout 1200000 test/engine/cross.test.ts

test: deps engine ## run the whole test suite (bun test)
	@$(BUN) test --timeout 120000

bench: deps engine ## run the standard benchmark set, the CLI start-up benchmark and (with tmux) the TUI's, print the tables
	@$(BUN) scripts/benchmark.ts standard
	@$(BUN) scripts/benchmark.ts cli
	@$(TUI_BENCH)

# The TUI's start to its first frame, beside bun -e and the OpenTUI floor; it needs tmux to give the TUI a terminal
TUI_BENCH = if command -v tmux >/dev/null; then $(BUN) scripts/benchmark.ts tui --runs 9 --steps; else echo "benchmark tui: skipped, it needs tmux (apt-get install tmux, brew install tmux)"; fi

# On a Mac, one run that says whether the GPU agrees with the CPU and how fast it is (RUN.md: what to send back).
mac-check: deps engine ## (macOS) every Metal kernel on the GPU, bench verify GPU vs CPU op by op, the standard benchmarks, fullbench's per-layer split, the TUI's start-up (with tmux); output also in native/build/mac-check.txt
	@[ "$$(uname -s)" = Darwin ] || { echo "mac-check: runs on macOS (the Metal GPU); here: make -C native metal-emu-test and ./flashchat benchmark verify --backend metal-emu"; exit 2; }
	@{ uname -a; sysctl -n machdep.cpu.brand_string hw.memsize 2>/dev/null; git rev-parse --short HEAD; \
	   $(MAKE) -s --no-print-directory -C native metal-gpu-test && \
	   ./flashchat benchmark verify --model demo --yes && \
	   $(BUN) scripts/benchmark.ts standard && \
	   for m in qwen3.5-397b-2l qwen3.6-35b-4l; do \
	     ./flashchat benchmark fullbench --artifacts "$${XDG_DATA_HOME:-$$HOME/.local/share}/flashchat/bench/models/$$m/artifacts" || exit 1; \
	   done && $(TUI_BENCH); echo "mac-check: exit $$?"; } 2>&1 | tee native/build/mac-check.txt

demo: deps engine ## set up the demo model and print a reply from it
	@./flashchat prompt --model demo --yes --tokens 64 "Hello"

clean: ## remove build outputs (never models, artifacts or your config)
	@$(MAKE) -C native clean
	rm -rf native/build

check: deps ## type-check the TypeScript (tsc --noEmit)
	@$(BUN) node_modules/typescript/bin/tsc --noEmit -p .

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-12s %s\n", $$1, $$2}'
