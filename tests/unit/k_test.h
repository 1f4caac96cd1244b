/* k_test.h — the smallest assertion helper that does the job.
 *
 * A test file defines void functions that call the K_CHECK* macros, then
 * ends with K_TEST_MAIN(test_a, test_b, ...). A failed check prints where
 * and why and the run goes on, so one run shows every failure; main prints
 * "N passed, N failed" and exits non-zero if anything failed (ctest reads
 * the exit status). */
#ifndef K_TEST_H
#define K_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int k_test_passed;
static int k_test_failed;

static inline void k_test_result(int ok, const char *file, int line, const char *what)
{
	if (ok) {
		k_test_passed++;
		return;
	}
	k_test_failed++;
	fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
}

#define K_CHECK(cond) k_test_result(!!(cond), __FILE__, __LINE__, #cond)

#define K_CHECK_STR_EQ(a, b)                                                                       \
	do {                                                                                       \
		const char *k_a_ = (a), *k_b_ = (b);                                               \
		int k_ok_ = k_a_ && k_b_ && strcmp(k_a_, k_b_) == 0;                               \
		k_test_result(k_ok_, __FILE__, __LINE__, #a " == " #b);                            \
		if (!k_ok_)                                                                        \
			fprintf(stderr, "\tgot:      \"%s\"\n\texpected: \"%s\"\n",                \
				k_a_ ? k_a_ : "(null)", k_b_ ? k_b_ : "(null)");                   \
	} while (0)

#define K_CHECK_INT_EQ(a, b)                                                                       \
	do {                                                                                       \
		intmax_t k_a_ = (intmax_t)(a), k_b_ = (intmax_t)(b);                               \
		k_test_result(k_a_ == k_b_, __FILE__, __LINE__, #a " == " #b);                     \
		if (k_a_ != k_b_)                                                                  \
			fprintf(stderr, "\tgot %jd, expected %jd\n", k_a_, k_b_);                  \
	} while (0)

#define K_TEST_MAIN(...)                                                                           \
	int main(void)                                                                             \
	{                                                                                          \
		void (*k_tests_[])(void) = {__VA_ARGS__};                                          \
		for (size_t k_i_ = 0; k_i_ < sizeof(k_tests_) / sizeof(k_tests_[0]); k_i_++)       \
			k_tests_[k_i_]();                                                          \
		printf("%d passed, %d failed\n", k_test_passed, k_test_failed);                    \
		return k_test_failed ? 1 : 0;                                                      \
	}

#endif
