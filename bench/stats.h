/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Timing and the median/percentile report shared by the C benchmarks.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* Sort @v, print its median and 10th/90th percentiles; return the median. */
static inline long report(const char *name, long *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_long);
	printf("%-11s median %8ld ns   p10 %8ld   p90 %8ld   (n=%d)\n",
	       name, v[n / 2], v[n / 10], v[n * 9 / 10], n);
	return v[n / 2];
}

#endif /* BENCH_STATS_H */
