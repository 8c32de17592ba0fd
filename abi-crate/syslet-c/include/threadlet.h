/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * threadlet.h - threadlets for C (libsyslet_c.a of the syslet project).
 *
 * A threadlet is a plain function run by threadlet_exec() on a stack of
 * its own.  If it never blocks it is a function call: threadlet_exec()
 * returns THREADLET_DONE after it returned.  If it blocks anywhere (a
 * system call, a page fault, a lock) while a spare thread is idle, the
 * spare takes over the caller - its thread ID, TLS, signal mask and
 * registers - and threadlet_exec() returns THREADLET_ASYNC at once; the
 * function goes on in a thread of its own, with the spare's former thread
 * ID and TLS.  It ends with "return threadlet_complete();".  Results go
 * back through its argument; how the caller learns that an asynchronous
 * threadlet finished (a futex, an eventfd, ...) is up to the program.
 *
 * Spares: only threads started by threadlet_start_spares() (parked in
 * async_thread()) take over threadlets, one each, and only while idle; a
 * threadlet that blocks while none is idle blocks in place.  So the idle
 * spares bound how many threadlets can go asynchronous at once.  The
 * thread that ran an asynchronous threadlet becomes a spare again when
 * the function returns (on the stack and with the TLS of the spare that
 * took over the caller), so spares are only missing while threadlets are
 * pending.  Parked spares block every signal but the C library's
 * internal ones (setuid() and cancellation keep working).
 *
 * Stacks: stack_top is the 16-byte aligned end of a stack the caller
 * provides (mmap it, with a guard page below).  threadlet_exec() keeps the
 * 16 bytes below stack_top for itself; the 32-bit word at stack_top - 8
 * (threadlet_stack_word()) is nonzero while a thread may still use the
 * stack.  It is cleared when threadlet_exec() returns THREADLET_DONE or
 * an error, and by the thread that ran an asynchronous threadlet once it
 * has left the stack, with a FUTEX_WAKE (not private).  Reuse or unmap a
 * stack only when its word is 0: threadlet_stack_wait() waits for that.
 *
 * TLS: before its first block the function runs on the caller's thread
 * and TLS; after it, on the TLS of the spare that took over (errno,
 * thread-local variables and pthread_self() are that thread's).  Across a
 * point where it may block, the function must not keep a pointer into
 * thread-local storage or hold a lock keyed on the thread's identity
 * (stdio's FILE locks: no printf(), recursive or error-checking mutexes):
 * the caller, which keeps the TLS, would find the lock its own.
 *
 * Build: cc -I<this directory> -I<installed uapi headers> prog.c
 *        libsyslet_c.a -lpthread -ldl -lm
 */
#ifndef THREADLET_H
#define THREADLET_H

#include <stdint.h>
#include <linux/syslet.h>	/* struct syslet_uatom, struct async_head_user */

#ifdef __cplusplus
extern "C" {
#endif

/* threadlet_exec() results */
#define THREADLET_DONE		0	/* fn returned in the caller */
#define THREADLET_ASYNC		1	/* fn blocked and goes on in its own thread */

/* The stack word is at stack_top - THREADLET_STACK_WORD_OFFSET. */
#define THREADLET_STACK_WORD_OFFSET	8

/*
 * Run fn(data) on the stack below stack_top as a threadlet.  Returns
 * THREADLET_DONE, THREADLET_ASYNC, or a negative errno (fn did not run):
 * -EINVAL for a NULL fn or a NULL or unaligned stack_top, -EBUSY inside a
 * threadlet (they do not nest), -EFAULT for an unreadable ahu (pass NULL:
 * it is only kept for the v3 signature), -ENOSYS without kernel support.
 * The caller's callee-saved registers, MXCSR and x87 control word are
 * those of the call either way.
 */
long threadlet_exec(long (*fn)(void *), void *data, void *stack_top,
		    struct async_head_user *ahu);

/*
 * The last act of a threadlet function: "return threadlet_complete();".
 * Disarms the threadlet; returns 0 if the function never blocked, 1 if
 * it runs in its own thread (it becomes a spare once the function
 * returns).  Nothing after it can go asynchronous.
 */
long threadlet_complete(void);

/*
 * Start n spare threads.  Returns 0 or a negative errno (the spares
 * started before the failure stay).  Spares live as long as the process.
 */
int threadlet_start_spares(unsigned int n);

/* An estimate of the idle spares (started, not yet parked ones count). */
long threadlet_idle_spares(void);

/* Wait until no thread uses the threadlet stack that ends at stack_top. */
void threadlet_stack_wait(void *stack_top);

/* The stack word of the threadlet stack that ends at stack_top. */
static inline volatile uint32_t *threadlet_stack_word(void *stack_top)
{
	return (volatile uint32_t *)((char *)stack_top -
				     THREADLET_STACK_WORD_OFFSET);
}

#ifdef __cplusplus
}
#endif

#endif /* THREADLET_H */
