# Syslets and threadlets on Linux 6.12: the one entry point.
#
# `make run` and `make test` do all the set-up (Debian packages, kernel
# source, patch series, kernel and initramfs builds) on a fresh Debian 12
# machine.  `make help` (the default) lists the targets and variables.

BUILD      ?= $(CURDIR)/build
KERNEL_SRC ?=
QEMU_ACCEL ?= tcg
JOBS       ?= $(shell echo $$(( $$(nproc) + 1 )))
V          ?=
FILES      ?=
CMD        ?=
TIMEOUT    ?= 900
# Syslets in flight at once in the big cachemiss tests on the debug kernel
# (KASAN and lockdep under TCG; the normal kernel runs 10,000)
DEBUG_INFLIGHT ?= 1000
# make bench: wall (multi-threaded TCG, host time) or icount (deterministic
# guest time), arguments for syslet-bench, QEMU's limit, where runs go
BENCH_MODE    ?= wall
BENCH_ARGS    ?=
BENCH_TIMEOUT ?= 7200
RESULTS       ?= $(CURDIR)/results
# make bench-plot: the CSV to draw again
CSV           ?=

export QEMU_ACCEL JOBS V

Q := $(if $(V),,@)

KTREE      ?= $(BUILD)/linux
KNORMAL    := $(BUILD)/kernel-normal
KDEBUG     := $(BUILD)/kernel-debug
KKCSAN     := $(BUILD)/kernel-kcsan
HDR        := $(BUILD)/headers/include
CARGO_DIR  := $(BUILD)/cargo
TARGET     := x86_64-unknown-linux-gnu
GUEST_BIN  := $(CARGO_DIR)/$(TARGET)/release
TOOLS      := $(BUILD)/tools
LOGS       := $(BUILD)/logs
SELFTEST   := $(BUILD)/selftests/syslet_test
CACHEMISS  := $(BUILD)/selftests/cachemiss_test
THREADLET  := $(BUILD)/selftests/threadlet_test
# The hardening selftests: exploits of the handoff, each closed by a patch
HARDENING_TESTS := hardening_test sigtarget_test stall_test leader_test state_test
FRAG_BASE  := qemu/kconfig/base.config
# The kernel's own selftests (docs/kselftest.md): built from $(KTREE),
# run on the patched normal kernel by `make test` and compared with the
# recorded run on the unpatched kernel (`make kselftest-baseline`).
KSELFTEST          := $(BUILD)/kselftest
KSELFTEST_LIST     := qemu/kselftest/programs
KSELFTEST_BASELINE := qemu/kselftest/baseline.txt
KSELFTEST_CPIO     := $(BUILD)/initramfs-kselftest.cpio
# The unpatched tree (a worktree of $(KTREE) at its tag `base`) and kernel
KBASE_TREE ?= $(BUILD)/linux-base
KBASE      := $(BUILD)/kernel-base
# QEMU's wall-clock limit for the selftest boot; init's limit per program
# (each program's own, shorter, limit is in $(KSELFTEST_LIST))
KSELFTEST_TIMEOUT ?= 900
FRAG_DEBUG := qemu/kconfig/debug.config
FRAG_KCSAN := qemu/kconfig/kcsan.config
GEN_CPIO   := $(TOOLS)/gen_init_cpio
SERIES     := $(wildcard kernel-patches/*.patch) kernel-patches/series

TREE_STAMP := $(KTREE)/.git/syslet-series
STATIC_RUSTFLAGS := -C target-feature=+crt-static

.DEFAULT_GOAL := help

.PHONY: help
help:
	@echo "Syslets and threadlets on Linux 6.12"
	@echo
	@echo "  make run          build everything, boot QEMU, run the syslet demo"
	@echo "  make test         every host and guest test (normal + debug kernel)"
	@echo "  make guest-run FILES=\"a b\" CMD=\"./a --x\""
	@echo "                    boot the patched kernel, run CMD on FILES in the guest"
	@echo "  make report       re-judge the saved guest logs without booting"
	@echo "  make bench        run syslet-bench in the guest; log, CSV, tables, plots"
	@echo "                    in RESULTS/<UTC stamp>-BENCH_MODE/ and RESULTS/latest"
	@echo "  make bench-plot CSV=results/latest/bench.csv"
	@echo "                    draw the plots and medians.csv of a CSV again (beside it)"
	@echo "  make kernel       the patched kernel (normal config)"
	@echo "  make kernel-debug the patched kernel (lockdep, KASAN, ... config)"
	@echo "  make kernel-kcsan the patched kernel with KCSAN (for make fuzz KERNEL=kcsan)"
	@echo "  make headers      install the patched uapi headers to $(HDR)"
	@echo "  make patches      regenerate kernel-patches/ from the work tree $(KTREE)"
	@echo "  make bindings     regenerate abi-crate/syslet-sys/src/bindings.rs"
	@echo "  make checkpatch   scripts/checkpatch.pl --strict over the series"
	@echo "  make series-check build at every patch, and with CONFIG_SYSLET=n (slow)"
	@echo "  make kselftest-baseline"
	@echo "                    run the kernel's own selftests on the unpatched kernel,"
	@echo "                    write $(KSELFTEST_BASELINE) (slow: builds that kernel)"
	@echo "  make fuzz         syslet-fuzz in the guest (fuzz/README.md): DURATION=secs"
	@echo "                    SEED=n KERNEL=debug|normal|kcsan THREADS=n PROCS=n"
	@echo "  make fuzz-smoke   the fuzzer's fixed seeds on the normal kernel (< 3 min)"
	@echo "  make stress       Debian's stress-ng beside the fuzzer, then trinity, in the"
	@echo "                    guest: DURATION=secs KERNEL=normal|debug|kcsan|base|base-kcsan"
	@echo "                    (base: unpatched; make kernel-base-kcsan builds the last)"
	@echo "  make deps         install the Debian packages needed (as root)"
	@echo "  make clean        remove $(BUILD)"
	@echo
	@echo "Variables (current values):"
	@echo "  BUILD=$(BUILD)"
	@echo "  KERNEL_SRC=$(KERNEL_SRC)  (empty: Debian's linux-source-6.12)"
	@echo "  QEMU_ACCEL=$(QEMU_ACCEL)  (tcg or kvm)"
	@echo "  JOBS=$(JOBS) TIMEOUT=$(TIMEOUT) V=$(V)"
	@echo "  BENCH_MODE=$(BENCH_MODE)  (wall or icount)  BENCH_ARGS=$(BENCH_ARGS)  (e.g. --smoke)"
	@echo "  BENCH_TIMEOUT=$(BENCH_TIMEOUT) RESULTS=$(RESULTS)"

# ---------------------------------------------------------------- set-up

# DEPS_FLAGS: `make bench` sets --bench for itself and its prerequisites.
.PHONY: deps
deps:
	$(Q)ci/deps.sh $(if $(KERNEL_SRC),--no-kernel-source) $(DEPS_FLAGS)

# The kernel work tree: pristine 6.12 + the series as commits.
.PHONY: kernel-tree
kernel-tree: deps
	$(Q)ci/kernel-tree.sh $(KTREE) $(CURDIR)/kernel-patches $(KERNEL_SRC)

# Kbuild is incremental by itself: always ask it.
.PHONY: kernel kernel-normal kernel-debug kernel-kcsan
kernel: kernel-tree
	$(Q)ci/build-kernel.sh $(KTREE) $(KNORMAL) $(CURDIR)/$(FRAG_BASE)

kernel-normal: kernel

kernel-debug: kernel-tree
	$(Q)ci/build-kernel.sh $(KTREE) $(KDEBUG) $(CURDIR)/$(FRAG_BASE) $(CURDIR)/$(FRAG_DEBUG)

kernel-kcsan: kernel-tree
	$(Q)ci/build-kernel.sh $(KTREE) $(KKCSAN) $(CURDIR)/$(FRAG_BASE) $(CURDIR)/$(FRAG_KCSAN)

.PHONY: headers
headers: kernel-tree
	@echo "[headers] installing uapi headers to $(HDR)"
	$(Q)$(MAKE) -s -C $(KTREE) O=$(BUILD)/headers-build INSTALL_HDR_PATH=$(BUILD)/headers headers_install

$(GEN_CPIO): kernel-tree
	$(Q)mkdir -p $(TOOLS)
	$(Q)gcc -O2 -o $@ $(KTREE)/usr/gen_init_cpio.c

# ------------------------------------------------------------ user space

.PHONY: guest-programs
guest-programs: headers
	@echo "[cargo] building static guest programs"
	$(Q)RUSTFLAGS="$(STATIC_RUSTFLAGS)" CARGO_TARGET_DIR=$(CARGO_DIR) \
		cargo build -q --release --target $(TARGET) \
		-p syslet-init -p syslet-guest-tests -p syslet -p syslet-bench --examples --bins
	@echo "[selftests] building $(SELFTEST)"
	$(Q)mkdir -p $(dir $(SELFTEST))
	$(Q)gcc -static -O2 -Wall -Werror -I$(HDR) -I$(KTREE)/tools/testing/selftests \
		-o $(SELFTEST) $(KTREE)/tools/testing/selftests/syslet/syslet_test.c
	$(Q)gcc -static -O2 -Wall -Werror -I$(HDR) -I$(KTREE)/tools/testing/selftests \
		-o $(CACHEMISS) $(KTREE)/tools/testing/selftests/syslet/cachemiss_test.c -lpthread
	$(Q)gcc -static -O2 -Wall -Werror -I$(HDR) -I$(KTREE)/tools/testing/selftests \
		-o $(THREADLET) $(KTREE)/tools/testing/selftests/syslet/threadlet_test.c -lpthread
	$(Q)for t in $(HARDENING_TESTS); do \
		gcc -static -O2 -Wall -Werror -I$(HDR) -I$(KTREE)/tools/testing/selftests \
			-o $(BUILD)/selftests/$$t $(KTREE)/tools/testing/selftests/syslet/$$t.c -lpthread \
			|| exit 1; \
	done

INITRD_ENV = GEN_INIT_CPIO=$(GEN_CPIO) INIT=$(GUEST_BIN)/init \
	GUEST_TESTS=$(GUEST_BIN)/syslet-guest-tests SELFTEST=$(SELFTEST) \
	CACHEMISS_TEST=$(CACHEMISS) THREADLET_TEST=$(THREADLET) \
	HARDENING_TEST=$(BUILD)/selftests/hardening_test \
	SIGTARGET_TEST=$(BUILD)/selftests/sigtarget_test \
	STALL_TEST=$(BUILD)/selftests/stall_test \
	LEADER_TEST=$(BUILD)/selftests/leader_test \
	STATE_TEST=$(BUILD)/selftests/state_test \
	SYSLET_BENCH=$(GUEST_BIN)/syslet-bench DEMO=$(GUEST_BIN)/examples/demo

.PHONY: initramfs
initramfs: guest-programs $(GEN_CPIO)
	$(Q)$(INITRD_ENV) initramfs/mkcpio.sh $(BUILD)/initramfs-test.cpio initramfs/base.list initramfs/test.list
	$(Q)$(INITRD_ENV) initramfs/mkcpio.sh $(BUILD)/initramfs-demo.cpio initramfs/base.list initramfs/demo.list

# The kernel's selftests of what the series touches (static, out of tree,
# from $(KTREE)) and the initramfs that runs them in syslet.mode=test.
.PHONY: kselftest-programs
kselftest-programs: headers guest-programs $(GEN_CPIO)
	$(Q)ci/build-kselftest.sh $(KTREE) $(HDR) $(KSELFTEST) $(KSELFTEST_LIST)
	$(Q)$(INITRD_ENV) initramfs/mkcpio.sh $(KSELFTEST_CPIO) initramfs/base.list $(KSELFTEST)/guest.list

# ---------------------------------------------------------------- guest

BZ_NORMAL := $(KNORMAL)/arch/x86/boot/bzImage
BZ_DEBUG  := $(KDEBUG)/arch/x86/boot/bzImage
BZ_KCSAN  := $(KKCSAN)/arch/x86/boot/bzImage

.PHONY: run
run: kernel initramfs
	$(Q)mkdir -p $(LOGS)
	$(Q)qemu/run-qemu.sh -k $(BZ_NORMAL) -i $(BUILD)/initramfs-demo.cpio \
		-l $(LOGS)/demo.log -t $(TIMEOUT) -a "syslet.mode=demo"
	$(Q)qemu/judge.sh $(LOGS)/demo.log demo >/dev/null

.PHONY: guest-run
guest-run: kernel initramfs
	$(Q)test -n "$(CMD)" || { echo 'usage: make guest-run FILES="a b" CMD="./a --x"' >&2; exit 2; }
	$(Q)mkdir -p $(LOGS)
	$(Q)$(INITRD_ENV) initramfs/mkcpio.sh --run-files "$(FILES)" --run-cmd "$(CMD)" \
		$(BUILD)/initramfs-run.cpio initramfs/base.list
	$(Q)qemu/run-qemu.sh -k $(BZ_NORMAL) -i $(BUILD)/initramfs-run.cpio \
		-l $(LOGS)/guest-run.log -t $(TIMEOUT) -a "syslet.mode=run" >/dev/null; \
	qemu/guest-status.sh $(LOGS)/guest-run.log

# ----------------------------------------------------------------- tests

.PHONY: test
test: kernel kernel-debug initramfs kselftest-programs fuzz-bin
	$(Q)mkdir -p $(LOGS)
	$(Q)rm -f $(LOGS)/*.result
	$(Q)KTREE=$(KTREE) ci/host-checks.sh $(BUILD) > $(LOGS)/host.result || true
	$(Q)qemu/run-qemu.sh -k $(BZ_NORMAL) -i $(BUILD)/initramfs-test.cpio \
		-l $(LOGS)/test-normal.log -t $(TIMEOUT) -a "syslet.mode=test" || true
	$(Q)qemu/judge.sh $(LOGS)/test-normal.log normal > $(LOGS)/normal.result || true
	$(Q)qemu/run-qemu.sh -k $(BZ_NORMAL) -i $(KSELFTEST_CPIO) -l $(LOGS)/kselftest.log \
		-t $(KSELFTEST_TIMEOUT) -a "syslet.mode=test syslet.timeout=300" || true
	$(Q)qemu/kselftest/compare.sh compare $(LOGS)/kselftest.log $(KSELFTEST_LIST) \
		$(KSELFTEST_BASELINE) > $(LOGS)/kselftest.result || true
	$(Q)qemu/run-qemu.sh -k $(BZ_DEBUG) -i $(BUILD)/initramfs-test.cpio \
		-l $(LOGS)/test-debug.log -t $(TIMEOUT) -a "syslet.mode=test syslet.inflight=$(DEBUG_INFLIGHT)" || true
	$(Q)qemu/judge.sh $(LOGS)/test-debug.log debug > $(LOGS)/debug.result || true
	$(call fuzz_boot,$(BZ_NORMAL),$(FUZZ_BIN),$(FUZZ_SMOKE_CMD),fuzz-smoke,400,2)
	$(Q)qemu/judge.sh $(LOGS)/fuzz-smoke.log fuzz > $(LOGS)/fuzz.result || true
	$(Q)$(MAKE) -s report

.PHONY: report
report:
	$(Q)for r in $(LOGS)/*.result; do echo "== $$r"; cat $$r; done
	$(Q)qemu/summarize.sh $(LOGS)/host.result $(LOGS)/normal.result $(LOGS)/debug.result \
		$(LOGS)/kselftest.result $(LOGS)/fuzz.result

# ------------------------------------------------------------ benchmarks

# One boot of the normal kernel running syslet-bench; ci/bench.sh packs
# its own initramfs and writes $(RESULTS)/<UTC stamp>-$(BENCH_MODE)/.
.PHONY: bench
bench: DEPS_FLAGS := --bench
bench: deps kernel guest-programs $(GEN_CPIO)
	$(Q)GEN_INIT_CPIO=$(GEN_CPIO) INIT=$(GUEST_BIN)/init BENCH_TIMEOUT=$(BENCH_TIMEOUT) \
		ci/bench.sh $(BZ_NORMAL) $(GUEST_BIN)/syslet-bench "$(RESULTS)" "$(BENCH_MODE)" $(BENCH_ARGS)

.PHONY: bench-plot
bench-plot:
	$(Q)test -n "$(CSV)" || { echo 'usage: make bench-plot CSV=results/latest/bench.csv' >&2; exit 2; }
	$(Q)bench/plot.sh "$(CSV)"

# ----------------------------------------------------------- maintenance

.PHONY: patches
patches:
	$(Q)ci/format-patches.sh $(KTREE) $(CURDIR)/kernel-patches

.PHONY: checkpatch
checkpatch: kernel-tree
	$(Q)cd $(KTREE) && PATH=/usr/bin:$$PATH ./scripts/checkpatch.pl --strict --quiet \
		--ignore FILE_PATH_CHANGES,ENOSYS \
		$(CURDIR)/kernel-patches/0*.patch

.PHONY: series-check
series-check: kernel
	$(Q)ci/series-check.sh $(KTREE) $(BUILD)/series-check $(KNORMAL)/.config

# The recorded baseline of the kernel's selftests: the unpatched kernel
# (tag `base` of $(KTREE), checked out as a worktree in $(KBASE_TREE))
# built with the normal fragment minus CONFIG_SYSLET, booted with the same
# programs. Commit $(KSELFTEST_BASELINE) after it changed.
# kernel-base-kcsan: the same tree with the KCSAN fragment, for
# `make stress KERNEL=base-kcsan` (the data races the unpatched kernel
# reports itself: fuzz/kcsan-known.txt).
.PHONY: kernel-base kernel-base-tree kernel-base-kcsan kselftest-baseline
kernel-base-tree: kernel-tree
	$(Q)test -e $(KBASE_TREE)/.git || git -C $(KTREE) worktree add --detach $(KBASE_TREE) base
	$(Q)test "$$(git -C $(KBASE_TREE) rev-parse HEAD)" = "$$(git -C $(KTREE) rev-parse 'base^{commit}')" \
		|| { echo "$(KBASE_TREE) is not at $(KTREE)'s tag base" >&2; exit 1; }
	$(Q)grep -v '^CONFIG_SYSLET=' $(FRAG_BASE) > $(BUILD)/kselftest-base.config

kernel-base: kernel-base-tree
	$(Q)ci/build-kernel.sh $(KBASE_TREE) $(KBASE) $(BUILD)/kselftest-base.config

kernel-base-kcsan: kernel-base-tree
	$(Q)ci/build-kernel.sh $(KBASE_TREE) $(KBASE)-kcsan $(BUILD)/kselftest-base.config $(CURDIR)/$(FRAG_KCSAN)

kselftest-baseline: kselftest-programs kernel-base
	$(Q)mkdir -p $(LOGS)
	$(Q)qemu/run-qemu.sh -k $(KBASE)/arch/x86/boot/bzImage -i $(KSELFTEST_CPIO) \
		-l $(LOGS)/kselftest-base.log -t $(KSELFTEST_TIMEOUT) -a "syslet.mode=test syslet.timeout=300" || true
	$(Q)qemu/kselftest/compare.sh baseline $(LOGS)/kselftest-base.log $(KSELFTEST_LIST) \
		$(KSELFTEST_BASELINE) "unpatched: tag base of the kernel tree, config $(FRAG_BASE) without CONFIG_SYSLET"

.PHONY: bindings
bindings: headers
	$(Q)ci/bindgen.sh $(TOOLS) $(HDR)

.PHONY: clean
clean:
	rm -rf $(BUILD)

# The fuzzer (issue 13): make fuzz, fuzz-smoke, fuzz-replay.
include fuzz/fuzz.mk
