# fuzz/fuzz.mk -- make targets for syslet-fuzz (issue 13), included by the
# root Makefile.
#
#   make fuzz                     60 s on the debug kernel, a clock seed
#   make fuzz DURATION=1800 SEED=1234 KERNEL=normal THREADS=3 PROCS=2
#   make fuzz KERNEL=kcsan        the KCSAN kernel, 4 vCPUs (FUZZ_SMP=n)
#   make fuzz-smoke               fixed seeds on the normal kernel (<= 3 min)
#   make fuzz-replay SEED=...     = make fuzz with that seed
#
# Replay: the same SEED and kernel give the same sequence of operations
# per thread (as far as scheduling allows).  FUZZ_SKIP=a,b (guest
# environment, passed on the kernel command line) leaves system calls out.

FUZZ_TARGET_DIR ?= $(BUILD)/cargo-fuzz
FUZZ_BIN        := $(FUZZ_TARGET_DIR)/x86_64-unknown-linux-gnu/release/syslet-fuzz
DURATION        ?= 60
SEED            ?= 0
KERNEL          ?= debug
THREADS         ?= 3
PROCS           ?= 2
FUZZ_HANG       ?= 120
FUZZ_SMOKE_SEEDS ?= 1,2,3
FUZZ_SMOKE_SECS  ?= 40
FUZZ_SKIP       ?=
# More guest environment for the fuzzer, e.g. FUZZ_ENV="FUZZ_CHILD=hog".
FUZZ_ENV        ?=
# The QEMU limit: the run plus drain, hang grace and boot.
FUZZ_QEMU_TIMEOUT = $$(( $(DURATION) + 2 * $(FUZZ_HANG) + 300 ))
FUZZ_BZIMAGE_normal = $(BZ_NORMAL)
FUZZ_BZIMAGE_debug  = $(BZ_DEBUG)
FUZZ_BZIMAGE_kcsan  = $(BZ_KCSAN)
FUZZ_BZIMAGE_base   = $(KBASE)/arch/x86/boot/bzImage
FUZZ_BZIMAGE_base-kcsan = $(KBASE)-kcsan/arch/x86/boot/bzImage
# vCPUs: a KCSAN kernel needs more CPUs than threads to catch races
FUZZ_SMP ?= $(if $(filter kcsan base-kcsan,$(KERNEL)),4,2)

.PHONY: fuzz fuzz-smoke fuzz-replay fuzz-bin

fuzz-bin:
	$(Q)RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) \
	  cargo build --release --target x86_64-unknown-linux-gnu -p syslet-fuzz

# fuzz_boot BZIMAGE, FILES, CMD, NAME, QEMU TIMEOUT, VCPUS[, MORE LISTS]:
# boot a kernel of choice with FILES in /work running CMD, as guest-run
# does; the console goes to $(LOGS)/NAME.log, for the caller to judge.
define fuzz_boot
	$(Q)mkdir -p $(LOGS)
	$(Q)$(INITRD_ENV) initramfs/mkcpio.sh --run-files "$(2)" --run-cmd "$(3)" \
		$(BUILD)/initramfs-$(4).cpio initramfs/base.list $(7)
	$(Q)qemu/run-qemu.sh -k $(1) -i $(BUILD)/initramfs-$(4).cpio -l $(LOGS)/$(4).log -t $(5) -s $(6) \
		-a "syslet.mode=run syslet.timeout=0 $(if $(FUZZ_SKIP),FUZZ_SKIP=$(FUZZ_SKIP)) $(FUZZ_ENV)" >/dev/null || true
endef

# fuzz_verdict LOG NAME: exits with the fuzzer's exit status in the guest,
# or 1 if the console has a kernel splat (qemu/judge.sh's list, which the
# fuzzer's own reading of /dev/kmsg may miss), and prints its verdict lines.
define fuzz_verdict
	$(Q)$(FUZZ_JUDGE_ENV) qemu/guest-status.sh $(LOGS)/$(1).log > $(LOGS)/$(1).status; rc=$$?; \
	cat $(LOGS)/$(1).status; \
	! grep -q "kernel splat" $(LOGS)/$(1).status || rc=1; \
	grep -a "^fuzz: \(seed=\|PASS\|FAIL\|CRASH\|HANG\|LOST\|WRONG\|UNEXPECTED\|FAULT\|kernel\)" $(LOGS)/$(1).log; \
	echo "log: $(LOGS)/$(1).log"; exit $$rc
endef

# fuzz_run BZIMAGE, CMD, QEMU TIMEOUT, LOG NAME, VCPUS: the fuzzer alone in
# the guest, judged by fuzz_verdict.
define fuzz_run
	$(call fuzz_boot,$(1),$(FUZZ_BIN),$(2),$(4),$(3),$(5))
	$(call fuzz_verdict,$(4))
endef

# On the KCSAN kernel: the reports the unpatched kernel gives too are
# counted apart, by the fuzzer and by the judge (fuzz/kcsan-known.txt).
FUZZ_KCSAN = $(if $(filter kcsan,$(KERNEL)),--kcsan-known kcsan-known.txt)
FUZZ_JUDGE_ENV = $(if $(filter kcsan,$(KERNEL)),JUDGE_KNOWN=$(CURDIR)/fuzz/kcsan-known.txt)
FUZZ_FILES = $(FUZZ_BIN) $(if $(filter kcsan,$(KERNEL)),$(CURDIR)/fuzz/kcsan-known.txt)

fuzz: fuzz-bin kernel-$(KERNEL) initramfs
	$(call fuzz_boot,$(FUZZ_BZIMAGE_$(KERNEL)),$(FUZZ_FILES),./syslet-fuzz --seed $(SEED) --duration $(DURATION) --threads $(THREADS) --procs $(PROCS) --hang $(FUZZ_HANG) $(FUZZ_KCSAN),fuzz-$(KERNEL),$(FUZZ_QEMU_TIMEOUT),$(FUZZ_SMP))
	$(call fuzz_verdict,fuzz-$(KERNEL))

fuzz-replay: fuzz

# Bounded: 3 seeds x 40 s + boot on the normal kernel, in KTAP; `make test`
# runs the same command and judges it like the other guest runs.
FUZZ_SMOKE_CMD = ./syslet-fuzz --tap --seed $(FUZZ_SMOKE_SEEDS) --duration $(FUZZ_SMOKE_SECS) \
	--threads 2 --procs 2 --hang 60
fuzz-smoke: fuzz-bin kernel initramfs
	$(call fuzz_run,$(FUZZ_BZIMAGE_normal),$(FUZZ_SMOKE_CMD),400,fuzz-smoke,2)

# Debian's stress-ng (fork, clone, signal, futex, pthread, seccomp, rseq
# stressors) beside syslet-fuzz, then trinity as nobody, in one boot
# (qemu/stress/stress.sh).  KERNEL=base boots the unpatched kernel with the
# same configuration and runs stress-ng and trinity alone, so that a
# failure can be told from one the series did not cause; KERNEL=base-kcsan
# does the same on the unpatched KCSAN kernel (its reports are not
# filtered: they are what fuzz/kcsan-known.txt may list).
STRESS_SEED ?= 1
STRESS_FILES = $(FUZZ_BIN) $(CURDIR)/qemu/stress/stress.sh $(BUILD)/tlb-race
STRESS_CMD = /bin/sh ./stress.sh $(DURATION) $(STRESS_SEED) $(if $(filter base%,$(KERNEL)),nofuzz,fuzz)
STRESS_TIMEOUT = $$(( 3 * $(DURATION) + 400 ))
.PHONY: stress
stress: DEPS_FLAGS := --stress
stress: deps fuzz-bin kernel-$(KERNEL) initramfs
	$(Q)qemu/stress/mklist.sh $(BUILD)/stress.list
	$(Q)gcc -static -O2 -Wall -Werror -o $(BUILD)/tlb-race qemu/stress/tlb-race.c -lpthread
	$(call fuzz_boot,$(FUZZ_BZIMAGE_$(KERNEL)),$(STRESS_FILES),$(STRESS_CMD),stress-$(KERNEL),$(STRESS_TIMEOUT),$(FUZZ_SMP),$(BUILD)/stress.list)
	$(Q)$(FUZZ_JUDGE_ENV) qemu/guest-status.sh $(LOGS)/stress-$(KERNEL).log > $(LOGS)/stress-$(KERNEL).status; rc=$$?; \
	grep -a "^stress: \|^fuzz: \(PASS\|FAIL\)\|^stress-ng: \(fail\|error\)\|kernel splat\|^guest-run:" \
		$(LOGS)/stress-$(KERNEL).status; \
	! grep -q "kernel splat" $(LOGS)/stress-$(KERNEL).status || rc=1; \
	echo "log: $(LOGS)/stress-$(KERNEL).log"; exit $$rc
