/*
 * testutil.h - shared scaffolding for the Check unit tests: each test file is
 * its own binary, so a module's tests build and run without the others.
 * Check forks every test (CK_FORK=no under valgrind), so a crash stays contained.
 */
#ifndef BCN_TESTUTIL_H
#define BCN_TESTUTIL_H

#include <check.h>
#include <stdlib.h>

#define BCN_TEST_MAIN(suite_fn)                                         \
	int main(void)                                                  \
	{                                                               \
		SRunner *sr = srunner_create(suite_fn());               \
		srunner_run_all(sr, CK_NORMAL);                         \
		int failed = srunner_ntests_failed(sr);                 \
		srunner_free(sr);                                       \
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;            \
	}

#endif
