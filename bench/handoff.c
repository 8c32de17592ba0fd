// SPDX-License-Identifier: GPL-2.0
/*
 * Cost of the syslet cachemiss handoff, side by side with thread creation,
 * in one boot.  Prints the median and the 10th/90th percentiles in
 * nanoseconds of:
 *
 *   handoff     async_exec() of a read() that blocks, until the head is
 *               back in user space (async_exec returned NULL)
 *   completion  write() that wakes the blocked read, until its final atom
 *               is visible in the completion ring
 *   wakeup      write() that wakes a thread blocked in a plain read(),
 *               until that thread runs in user space (baseline for
 *               "completion")
 *   thread      pthread_create() + pthread_join() of an empty thread
 *
 * Usage: handoff [ROUNDS]   (default 2000)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/syslet.h>

#include "stats.h"

struct op {
	struct syslet_uatom atom;
	unsigned long args[3];
	long ret;
	char byte;
};

static void *empty(void *arg)
{
	return arg;
}

static int wake_fds[2];
static volatile long woke_at;

static void *reader(void *arg)
{
	char c;

	for (;;) {
		if (read(wake_fds[0], &c, 1) != 1)
			return NULL;
		woke_at = now_ns();
		if (c == 'q')
			return NULL;
	}
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	long *handoff = calloc(n, sizeof(long));
	long *completion = calloc(n, sizeof(long));
	long *wakeup = calloc(n, sizeof(long));
	long *thread = calloc(n, sizeof(long));
	struct syslet_uatom **slots = calloc(n, sizeof(*slots));
	struct async_head_user ahu = {
		.completion_ring = slots,
		.ring_size_bytes = n * sizeof(*slots),
	};
	struct op *ops = calloc(n, sizeof(*ops));
	int fds[2], i;
	pthread_t t;

	if (pipe(fds) || pipe(wake_fds))
		return 1;
	/* Warm up: the first call creates the process's first spare */
	for (i = 0; i < n; i++) {
		struct op *op = &ops[i];
		long t0, t1, ret;
		struct syslet_uatom *done;

		op->args[0] = fds[0];
		op->args[1] = (unsigned long)&op->byte;
		op->args[2] = 1;
		op->atom.nr = SYS_read;
		op->atom.ret_ptr = &op->ret;
		op->atom.arg_ptr[0] = &op->args[0];
		op->atom.arg_ptr[1] = &op->args[1];
		op->atom.arg_ptr[2] = &op->args[2];
		t0 = now_ns();
		ret = syscall(__NR_async_exec, &op->atom, &ahu);
		t1 = now_ns();
		if (ret != 0) {
			fprintf(stderr, "round %d: async_exec returned %ld\n", i, ret);
			return 1;
		}
		handoff[i] = t1 - t0;
		/* Let the cachemiss thread settle in its read */
		usleep(200);
		t0 = now_ns();
		if (write(fds[1], "x", 1) != 1)
			return 1;
		while (!(done = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE)))
			;
		completion[i] = now_ns() - t0;
		if (done != &op->atom || op->ret != 1)
			return 1;
		/* Let it park as a spare again */
		usleep(200);
	}
	report("handoff", handoff, n);
	report("completion", completion, n);

	pthread_create(&t, NULL, reader, NULL);
	for (i = 0; i < n; i++) {
		long t0;

		usleep(200);
		woke_at = 0;
		t0 = now_ns();
		if (write(wake_fds[1], "w", 1) != 1)
			return 1;
		while (!woke_at)
			;
		wakeup[i] = woke_at - t0;
	}
	if (write(wake_fds[1], "q", 1) != 1)
		return 1;
	pthread_join(t, NULL);
	report("wakeup", wakeup, n);

	for (i = 0; i < n; i++) {
		long t0 = now_ns();

		pthread_create(&t, NULL, empty, NULL);
		pthread_join(t, NULL);
		thread[i] = now_ns() - t0;
	}
	report("thread", thread, n);
	printf("ratio handoff/thread %.2f  completion/wakeup %.2f\n",
	       (double)handoff[n / 2] / thread[n / 2],
	       (double)completion[n / 2] / wakeup[n / 2]);
	return 0;
}
