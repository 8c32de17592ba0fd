// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * threadlet_example.c - threadlets from C through <threadlet.h> and
 * libsyslet_c.a.
 *
 * A function that does not block is a call (THREADLET_DONE); one that
 * reads an empty pipe goes on in its own thread while the caller returns
 * at once (THREADLET_ASYNC) with its thread ID unchanged; the write
 * completes it (a futex word), and the stack word says when the stack may
 * be used again.  On a kernel without threadlets it checks the error path
 * only and says so.  Exit status 0 when everything held.
 *
 *   cc -Wall -I abi-crate/syslet-c/include -I build/headers/include \
 *       abi-crate/syslet-c/examples/threadlet_example.c \
 *       target/debug/libsyslet_c.a -lpthread -ldl -lm
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <threadlet.h>

_Static_assert(sizeof(struct syslet_uatom) == 88, "struct syslet_uatom");
_Static_assert(sizeof(struct async_head_user) == 64, "struct async_head_user");

#define STACK_SIZE	(256 * 1024)

static int failures;

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			printf("not ok: %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			printf(__VA_ARGS__);				\
			printf("\n");					\
			failures++;					\
		}							\
	} while (0)

static long gettid_(void)
{
	return syscall(SYS_gettid);
}

/* A function that never blocks. */
struct sum {
	long a, b, result;
	long tid;
};

static long sum_fn(void *arg)
{
	struct sum *s = arg;

	s->result = s->a + s->b;
	s->tid = gettid_();
	return threadlet_complete();
}

/* A function that reads a pipe, and says when it is done (a futex). */
struct reader {
	int fd;
	char buf[32];
	long n;
	long tid;
	uint32_t done;
};

static long read_fn(void *arg)
{
	struct reader *r = arg;

	r->n = read(r->fd, r->buf, sizeof(r->buf));
	r->tid = gettid_();
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &r->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	return threadlet_complete();
}

static long never_fn(void *arg)
{
	(void)arg;
	abort();
}

/* Spares parked in async_thread() (system call 503): /proc says. */
static int parked_spares(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], line[64];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f) && !strncmp(line, "503 ", 4))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

int main(void)
{
	char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	void *top = stack + STACK_SIZE;
	struct sum s = { .a = 40, .b = 2 };
	struct reader r = { 0 };
	long ret, tid = gettid_();
	int p[2], i;

	if (stack == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* Bad input: fn does not run, the stack is not touched. */
	CHECK(threadlet_exec(NULL, NULL, top, NULL) == -EINVAL, "NULL fn");
	CHECK(threadlet_exec(never_fn, NULL, NULL, NULL) == -EINVAL, "NULL stack");
	CHECK(threadlet_exec(never_fn, NULL, (char *)top - 8, NULL) == -EINVAL,
	      "unaligned stack");
	CHECK(*threadlet_stack_word(top) == 0, "stack word after errors");

	ret = threadlet_exec(sum_fn, &s, top, NULL);
	if (ret == -ENOSYS) {
		CHECK(s.result == 0, "fn ran without threadlets");
		CHECK(*threadlet_stack_word(top) == 0, "stack word after ENOSYS");
		printf("# no threadlets in this kernel (ENOSYS): error paths only\n");
		printf("%s threadlet_example\n", failures ? "not ok" : "ok");
		return failures ? 1 : 0;
	}
	CHECK(ret == THREADLET_DONE, "threadlet_exec(sum_fn) = %ld", ret);
	CHECK(s.result == 42, "sum %ld", s.result);
	CHECK(s.tid == tid, "sum_fn ran in thread %ld, not the caller's %ld", s.tid, tid);
	CHECK(*threadlet_stack_word(top) == 0, "stack word after DONE");

	/* A spare, parked, to take over the caller when read_fn blocks. */
	CHECK(threadlet_start_spares(1) == 0, "threadlet_start_spares");
	for (i = 0; i < 2000 && parked_spares() < 1; i++)
		usleep(5000);
	CHECK(parked_spares() >= 1, "no spare parked after 10 s");
	CHECK(pipe(p) == 0, "pipe");
	r.fd = p[0];
	ret = threadlet_exec(read_fn, &r, top, NULL);
	CHECK(ret == THREADLET_ASYNC, "threadlet_exec(read_fn) = %ld", ret);
	CHECK(gettid_() == tid, "caller's TID changed to %ld", gettid_());
	CHECK(!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE), "read done before the write");
	CHECK(*threadlet_stack_word(top) != 0, "stack free while read_fn runs");
	CHECK(write(p[1], "threadlet", 9) == 9, "write");
	while (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &r.done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	CHECK(r.n == 9 && !memcmp(r.buf, "threadlet", 9), "read %ld bytes", r.n);
	CHECK(r.tid != tid, "read_fn went on under the caller's TID");
	threadlet_stack_wait(top);
	CHECK(*threadlet_stack_word(top) == 0, "stack word after the wait");

	/* The stack again, for a call. */
	s.result = 0;
	CHECK(threadlet_exec(sum_fn, &s, top, NULL) == THREADLET_DONE, "second sum");
	CHECK(s.result == 42, "second sum %ld", s.result);

	printf("%s threadlet_example\n", failures ? "not ok" : "ok");
	return failures ? 1 : 0;
}
