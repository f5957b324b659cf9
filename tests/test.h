/*
 * test.h -- the tiny test framework every tests/test_*.c program uses.
 *
 *   TEST(name)                 defines one case.  Write it at column 0 on its
 *   {                          own line: tests/CMakeLists.txt finds cases with
 *       ...                    the regex ^TEST\(([a-z0-9_]+)\) and registers
 *   }                          each as the CTest case AREA.name.
 *
 * Cases register themselves (a constructor per case), so a case can never
 * be defined and forgotten.  A case `x` defines test_x() and
 * test_register_x(), so avoid the names register, fail, err_slot and
 * err_last.  The runner (tests/support/runner.c) provides
 * main(): `test_foo NAME` runs one case, `test_foo` runs them all, each in
 * its own forked process.  A case that is registered with CTest but unknown
 * to the program fails, so the two lists cannot drift apart.
 *
 * Assertions print file:line and what differed, then end the case with a
 * non-zero exit status.  They may be used from any thread.  SKIP(why)
 * ends a case whose subject this build or machine does not have; CTest
 * shows it as skipped.
 *
 * ERR is an `mh_error **` slot owned by the runner: pass it as the err
 * argument of a library call, then ASSERT_STATUS prints the error's message
 * on mismatch and ERR_MSG() reads it.  Each use of ERR frees the previous
 * error, and the runner frees the last one, so cases never leak errors.
 * ERR is for the main thread only; worker threads use their own mh_error.
 */
#ifndef MODHOST_TEST_H
#define MODHOST_TEST_H

#include <stdint.h>
#include <string.h>

#include <modhost.h>

typedef void (*test_fn)(void);

void test_register(const char *name, test_fn fn);
_Noreturn void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* End the case as skipped (exit status TEST_SKIP_STATUS, which CTest
 * reports as "Skipped", never as passed), saying why: for a case whose
 * subject does not exist in this build or on this machine. */
_Noreturn void test_skip(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define TEST_SKIP_STATUS 77

/* How many times slower than a plain run this one is allowed to be: 1, or
 * MH_TEST_TIMEOUT_SCALE (1-100) where a caller runs the tests under
 * valgrind.  The runner's watchdog is scaled by it, and so must be any
 * alarm or budget a case sets for itself (a forked child's, say). */
unsigned test_timeout_scale(void);
/* The runner's per-case watchdog, in seconds, scaled as above. */
unsigned test_case_timeout_s(void);

/* The runner's error slot: frees any previous error, returns the slot. */
mh_error **test_err_slot(void);
/* The error currently in the slot, or NULL. */
mh_error *test_err_last(void);

#define ERR (test_err_slot())
#define ERR_MSG() (mh_error_message(test_err_last()))
#define ERR_CODE() (mh_error_code(test_err_last()))

#define TEST(name)                                                        \
    static void test_##name(void);                                        \
    __attribute__((constructor)) static void test_register_##name(void)   \
    {                                                                     \
        test_register(#name, test_##name);                                \
    }                                                                     \
    static void test_##name(void)

#define FAIL(...) test_fail(__FILE__, __LINE__, __VA_ARGS__)
#define SKIP(...) test_skip(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT_TRUE(cond)                                                 \
    do {                                                                  \
        if (!(cond))                                                      \
            FAIL("assertion failed: %s", #cond);                          \
    } while (0)

#define ASSERT_FALSE(cond) ASSERT_TRUE(!(cond))

#define ASSERT_EQ_INT(a, b)                                               \
    do {                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);               \
        if (a_ != b_)                                                     \
            FAIL("%s == %s: got %lld, expected %lld", #a, #b, a_, b_);    \
    } while (0)

#define ASSERT_NE_INT(a, b)                                               \
    do {                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);               \
        if (a_ == b_)                                                     \
            FAIL("%s != %s: both are %lld", #a, #b, a_);                  \
    } while (0)

#define ASSERT_EQ_STR(a, b)                                               \
    do {                                                                  \
        const char *a_ = (a), *b_ = (b);                                  \
        if (a_ == NULL || b_ == NULL ? a_ != b_ : strcmp(a_, b_) != 0)    \
            FAIL("%s == %s: got \"%s\", expected \"%s\"", #a, #b,         \
                 a_ ? a_ : "(null)", b_ ? b_ : "(null)");                 \
    } while (0)

#define ASSERT_EQ_PTR(a, b)                                               \
    do {                                                                  \
        const void *a_ = (const void *)(a), *b_ = (const void *)(b);      \
        if (a_ != b_)                                                     \
            FAIL("%s == %s: got %p, expected %p", #a, #b, a_, b_);        \
    } while (0)

#define ASSERT_NE_PTR(a, b)                                               \
    do {                                                                  \
        const void *a_ = (const void *)(a), *b_ = (const void *)(b);      \
        if (a_ == b_)                                                     \
            FAIL("%s != %s: both are %p", #a, #b, a_);                    \
    } while (0)

#define ASSERT_NULL(p) ASSERT_EQ_PTR((p), NULL)

#define ASSERT_NOT_NULL(p)                                                \
    do {                                                                  \
        if ((const void *)(p) == NULL)                                    \
            FAIL("%s is NULL", #p);                                       \
    } while (0)

/* expr returns an mh_status; on mismatch print both names and the message
 * of the error in the ERR slot (if expr used ERR). */
#define ASSERT_STATUS(expr, want)                                         \
    do {                                                                  \
        int got_ = (int)(expr), want_ = (int)(want);                      \
        if (got_ != want_)                                                \
            FAIL("%s: got %s, expected %s; message: \"%s\"", #expr,       \
                 mh_status_name(got_), mh_status_name(want_),             \
                 mh_error_message(test_err_last()));                      \
    } while (0)

#define ASSERT_CONTAINS(haystack, needle)                                 \
    do {                                                                  \
        const char *h_ = (haystack), *n_ = (needle);                      \
        if (h_ == NULL || n_ == NULL || strstr(h_, n_) == NULL)           \
            FAIL("%s does not contain \"%s\": \"%s\"", #haystack,         \
                 n_ ? n_ : "(null)", h_ ? h_ : "(null)");                 \
    } while (0)

#define ASSERT_NOT_CONTAINS(haystack, needle)                             \
    do {                                                                  \
        const char *h_ = (haystack), *n_ = (needle);                      \
        if (h_ != NULL && n_ != NULL && strstr(h_, n_) != NULL)           \
            FAIL("%s contains \"%s\": \"%s\"", #haystack, n_, h_);        \
    } while (0)

#endif /* MODHOST_TEST_H */
