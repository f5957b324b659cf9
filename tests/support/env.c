/*
 * env.c -- setenv/unsetenv for tests, restored when the case ends so a
 * case never changes the environment of the next one (when all cases run
 * in one process tree).
 */
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "test.h"

void env_restore_all(void);

#define MAX_SAVED 32

static struct {
    char *name;
    char *old; /* NULL: was unset */
} saved[MAX_SAVED];
static size_t nsaved;

static void remember(const char *name)
{
    const char *old;

    for (size_t i = 0; i < nsaved; i++)
        if (strcmp(saved[i].name, name) == 0)
            return;
    if (nsaved == MAX_SAVED)
        FAIL("env_set: more than %d variables", MAX_SAVED);
    old = getenv(name);
    saved[nsaved].name = strdup(name);
    saved[nsaved].old = old ? strdup(old) : NULL;
    if (saved[nsaved].name == NULL || (old && saved[nsaved].old == NULL))
        FAIL("out of memory in test support");
    nsaved++;
}

void env_set(const char *name, const char *value)
{
    remember(name);
    if (setenv(name, value, 1) < 0)
        FAIL("setenv(%s)", name);
}

void env_unset(const char *name)
{
    remember(name);
    unsetenv(name);
}

void env_restore_all(void)
{
    while (nsaved > 0) {
        nsaved--;
        if (saved[nsaved].old)
            setenv(saved[nsaved].name, saved[nsaved].old, 1);
        else
            unsetenv(saved[nsaved].name);
        free(saved[nsaved].name);
        free(saved[nsaved].old);
    }
}
