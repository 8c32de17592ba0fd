// SPDX-License-Identifier: GPL-2.0
/*
 * Cost of threadlets, side by side with what they replace, in one boot.
 * Prints the median and the 10th/90th percentiles in nanoseconds of:
 *
 *   call        a function call plus two system calls (getppid): what a
 *               threadlet that does not block adds up to at the least
 *   threadlet   threadlet_exec() of the same function that does not block
 *               (threadlet_on, a stack switch, the call, threadlet_off)
 *   dispatch    threadlet_exec() of a function that blocks (a futex wait),
 *               until the caller is back (THREADLET_ASYNC)
 *   create      pthread_create() of a thread that runs the same function,
 *               until the creator is back
 *   tl-request  one blocking request as a threadlet: dispatch, wake the
 *               function, until it has finished and its stack is free
 *   pt-request  the same as a thread per request: pthread_create(), wake,
 *               pthread_join()
 *
 * and the ratios threadlet/call, dispatch/create, tl-request/pt-request.
 *
 * Build (after `make headers` and `cargo build --release -p syslet-c`):
 *   gcc -static -O2 -Ibuild/headers/include -Iabi-crate/syslet-c/include \
 *       -o build/threadlet-bench bench/threadlet.c \
 *       target/release/libsyslet_c.a -lpthread -ldl -lm
 * Usage: threadlet-bench [ROUNDS]   (default 2000)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <threadlet.h>

#include "stats.h"

#define STACK_SIZE	(64 * 1024)

static long futex(uint32_t *word, int op, uint32_t val,
		  const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

/* ---- the functions ---- */

static long counter;

static __attribute__((noinline)) long plain_fn(void *arg)
{
	counter += (long)arg;
	return 0;
}

static long nonblocking_fn(void *arg)
{
	plain_fn(arg);
	return threadlet_complete();
}

/*
 * A request that blocks until it is woken: a futex wait on req->go (with
 * a timeout, in case no spare was idle and it blocks in place), then it
 * says it is done.
 */
struct req {
	uint32_t go;
	uint32_t done;
	int timed_out;
};

static void serve(struct req *r)
{
	struct timespec limit = { .tv_sec = 0, .tv_nsec = 200 * 1000 * 1000 };

	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE)) {
		if (futex(&r->go, FUTEX_WAIT_PRIVATE, 0, &limit) &&
		    errno == ETIMEDOUT) {
			r->timed_out = 1;
			break;
		}
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	futex(&r->done, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static long blocking_fn(void *arg)
{
	serve(arg);
	return threadlet_complete();
}

static void *blocking_thread(void *arg)
{
	serve(arg);
	return NULL;
}

static void wake(uint32_t *word)
{
	__atomic_store_n(word, 1, __ATOMIC_RELEASE);
	futex(word, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static void wait_done(struct req *r)
{
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
		futex(&r->done, FUTEX_WAIT_PRIVATE, 0, NULL);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000, i, in_place = 0;
	long *call = calloc(n, sizeof(long)), *tl = calloc(n, sizeof(long));
	long *disp = calloc(n, sizeof(long)), *create = calloc(n, sizeof(long));
	long *tlreq = calloc(n, sizeof(long)), *ptreq = calloc(n, sizeof(long));
	char *mem = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *stack = mem + STACK_SIZE;
	long m_call, m_tl, m_disp, m_create, m_tlreq, m_ptreq, t0, ret;

	if (n < 10 || !call || !tl || !disp || !create || !tlreq || !ptreq ||
	    mem == MAP_FAILED) {
		fprintf(stderr, "usage: %s [ROUNDS >= 10]\n", argv[0]);
		return 2;
	}
	if (threadlet_start_spares(2)) {
		fprintf(stderr, "threadlet_start_spares failed\n");
		return 1;
	}
	usleep(100000);

	for (i = 0; i < n; i++) {
		t0 = now_ns();
		syscall(SYS_getppid);
		plain_fn((void *)1L);
		syscall(SYS_getppid);
		call[i] = now_ns() - t0;

		t0 = now_ns();
		ret = threadlet_exec(nonblocking_fn, (void *)1L, stack, NULL);
		tl[i] = now_ns() - t0;
		if (ret != THREADLET_DONE) {
			fprintf(stderr, "non-blocking threadlet: %ld\n", ret);
			return 1;
		}
	}

	for (i = 0; i < n; i++) {
		struct req r = { 0 };
		pthread_t t;

		t0 = now_ns();
		ret = threadlet_exec(blocking_fn, &r, stack, NULL);
		disp[i] = now_ns() - t0;
		if (ret != THREADLET_ASYNC) {
			/* No spare was parked: it waited for its timeout */
			in_place++;
			i--;
			continue;
		}
		wake(&r.go);
		wait_done(&r);
		threadlet_stack_wait(stack);
		tlreq[i] = now_ns() - t0;

		memset(&r, 0, sizeof(r));
		t0 = now_ns();
		if (pthread_create(&t, NULL, blocking_thread, &r))
			return 1;
		create[i] = now_ns() - t0;
		wake(&r.go);
		pthread_join(t, NULL);
		ptreq[i] = now_ns() - t0;
		if (r.timed_out)
			fprintf(stderr, "thread request timed out\n");
	}

	m_call = report("call", call, n);
	m_tl = report("threadlet", tl, n);
	m_disp = report("dispatch", disp, n);
	m_create = report("create", create, n);
	m_tlreq = report("tl-request", tlreq, n);
	m_ptreq = report("pt-request", ptreq, n);
	printf("ratio threadlet/call %.2f  dispatch/create %.2f  tl-request/pt-request %.2f  (in place: %d)\n",
	       (double)m_tl / m_call, (double)m_disp / m_create,
	       (double)m_tlreq / m_ptreq, in_place);
	return 0;
}
