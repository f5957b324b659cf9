/*
 * cache/registry.h -- the module registry (mh_reg_*): Python's sys.modules.
 *
 * Each module name has at most one entry.  An entry is a small state
 * machine:
 *
 *     (absent) --claim--> INITIALIZING --publish--> READY
 *                              |
 *                              +------abandon--> FAILED (slot emptied)
 *
 * The thread that claims an entry owns it and runs find, load and init
 * with no lock held; other threads that import the same name wait on the
 * registry's one condition variable and receive the owner's result.
 *
 * Entries in flight live on a short list under host->lock.  Only a READY
 * entry is stored in its interned name's `module` slot, and READY entries
 * live until the host is freed, so the lock-free fast path can never see
 * an entry that is about to be freed.
 */
#ifndef MH_CACHE_REGISTRY_H
#define MH_CACHE_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modhost.h"

struct mh_host;
struct mh_tstate;

typedef enum mh_mod_state {
    MH_STATE_INITIALIZING = 1,
    MH_STATE_READY = 2,
    MH_STATE_FAILED = 3
} mh_mod_state;

/* A failure's error text, as a later failure is matched against it: its
 * status (MH_OK: none recorded), length and hash.  Recording one
 * allocates nothing, so a record cannot itself be lost to the memory
 * shortage it records. */
typedef struct mh_msg_mark {
    uint64_t hash;
    size_t len;
    uint8_t status;
} mh_msg_mark;

/* What only an import in flight needs: a block of its own, freed when the
 * entry is published, so a loaded module keeps none of it.  Under
 * host->lock, but for what only the owner thread reads (importer, origin;
 * init_message is written under the lock and read by the owner once its
 * init returned). */
typedef struct mh_flight {
    struct mh_tstate *owner;        /* thread running find/load/init */
    mh_error *failure;              /* owner's error, for waiters */
    struct mh_module *next_pending; /* in-flight list */
    struct mh_module *importer;     /* module this thread was importing
                                       when it claimed this one */
    char *init_message;             /* set_error text during init: set
                                       under host->lock while in_init */
    bool init_message_lost;         /* the last one was, for memory */
    bool init_message_dep;          /* init_message is a failed nested
                                       import's, shown by nothing yet: it
                                       is logged if the init goes on or
                                       replaces it, and is the error's
                                       text if the init fails */
    uint8_t init_dep_status;        /* that nested import's mh_status */
    mh_msg_mark chunk_dep;          /* a Lua chunk's last failed nested
                                       import or call (owner only): the
                                       chunk failing with its error fails
                                       as it did */
    bool in_chunk;                  /* its Lua chunk is running (owner
                                       only) */
    const char *origin;             /* the import's answer (transient),
                                       for its messages; or NULL */
    bool name_missing;              /* the walk found no module of this
                                       name (owner, before the failure is
                                       published): a waiter given the
                                       failure learns it too
                                       (mh_reg_missing) */
} mh_flight;

struct mh_module {
    struct mh_host *host;
    const char *name;               /* interned */
    /* Its origin, as found: origin_base + relpath(name) + the suffix
     * numbered origin_tail (registry.c), interned when first asked for;
     * origin_tail 0: origin_base is the whole origin.  Every module of a
     * search path entry shares one base, so a loaded module keeps no path
     * of its own until one is asked for. */
    const char *origin_base;        /* interned */
    const char *finder;             /* static finder name */
    /* Small fields together: a loaded module's entry is 120 bytes (a
     * 128-byte heap block), which the memory target counts. */
    uint8_t kind;                   /* mh_module_kind */
    uint8_t origin_tail;            /* see origin_base */
    bool in_init;                   /* set_error is allowed (written under
                                       host->lock) */
    bool dep_failed;                /* an import from its init failed: a
                                       failing init is then not its own
                                       fault (a cycle, a deadlock, a
                                       missing module) and not recorded */
    _Atomic uint8_t state;          /* mh_mod_state */
    uint16_t nexports;              /* native: below MAX_EXPORTS (65536) */

    /* Bookkeeping under host->lock.  Waiters sleep on the registry's one
     * condition variable (registry.cond), not one per module: a loaded
     * module costs no pthread_cond_t. */
    unsigned waiters;               /* threads waiting for it */
    int fd;                         /* the file it was mapped from, kept
                                       open while loaded (its
                                       /proc/self/fd name must not be
                                       reused), or -1 */
    struct mh_flight *flight;       /* while in flight: INITIALIZING, or
                                       FAILED with waiters; NULL once
                                       READY (a loaded module keeps none
                                       of it) */
    struct mh_module *older;        /* READY modules, newest first */

    /* Loader state. */
    void *dl;                       /* dlopen handle */
    union {                         /* one or the other, by kind: */
        struct mh_mfd *image;       /* native: its in-memory image
                                       (loaders/memfd.c), or NULL */
        int lua_ref;                /* Lua: its exports table in the Lua
                                       registry, or 0 */
    };
    const mh_plugin_desc *desc;     /* NULL for plain and namespace */
    void *userdata;                 /* the plugin's, via set_userdata */
    /* Its manifest, checked before load; or NULL.  A manifest from an
     * ELF note the mapping holds is not kept: `note` points at the note's
     * data there (abi, JSON), and mh_meta_manifest parses it on first use
     * (loaded modules cost no manifest until one is asked for). */
    struct mh_manifest *_Atomic manifest;
    const char *note;               /* NULL once unloaded */
    uint32_t note_hash;             /* of the note as checked, to tell a
                                       file rewritten in place since */
    uint32_t note_len;              /* its JSON's length, as checked */
};
_Static_assert(sizeof(struct mh_module) <= 120,
               "a loaded module's entry outgrew its 128-byte heap block");

typedef struct mh_registry {
    pthread_cond_t cond;            /* some entry reached READY or FAILED */
    struct mh_module *newest;       /* READY modules, newest first */
    size_t count;                   /* READY modules */
    struct mh_module *pending;      /* INITIALIZING or FAILED-with-waiters */
} mh_registry;

void mh_reg_init(mh_registry *r);

/* "a -> b -> next": this thread's imports in progress, outermost first,
 * then next. */
struct mh_buf;
void mh_reg_import_chain(struct mh_buf *b, const char *next);

/* Fast path: the READY module of that name, or NULL.  One hash lookup, no
 * lock, no allocation. */
mh_module *mh_reg_lookup(struct mh_host *h, const char *name, size_t len);

/* A lock one thread holds for a long while, whose holder may import: a
 * search path entry while its finder's claims() and open() run.  Waits for
 * it are seen by the deadlock check, which breaks such a wait rather than
 * fail an import (the waiter passes over the entry: it cannot be opened
 * before the import that its holder waits for is done).  Guarded by the
 * host's lock; `host` and `what` are set once, before any use. */
typedef struct mh_olock {
    struct mh_host *host;
    const char *kind, *what;        /* for messages: "search path entry",
                                       and which */
    struct mh_tstate *_Atomic owner;
} mh_olock;

typedef enum mh_olock_r {
    MH_OLOCK_TAKEN,   /* this thread holds it now: give it back */
    MH_OLOCK_MINE,    /* this thread held it already (nothing to give) */
    MH_OLOCK_BUSY     /* held by a thread that waits, through imports, for
                         this one: waiting would never end */
} mh_olock_r;

/* Take l, waiting while another thread holds it.  MH_OLOCK_BUSY appends
 * its holder and what it waits for to `why` (may be NULL): "another
 * thread, which waits for 'b' (being imported by this thread)". */
mh_olock_r mh_reg_olock_take(mh_olock *l, struct mh_buf *why);
void mh_reg_olock_give(mh_olock *l);
bool mh_reg_olock_mine(const mh_olock *l);

/* Outcome of mh_reg_claim. */
typedef enum mh_claim {
    MH_CLAIM_OWNED,   /* *mod is new, INITIALIZING, owned by this thread */
    MH_CLAIM_READY,   /* *mod is loaded; nothing to do */
    MH_CLAIM_ERROR    /* error in *err: cycle, deadlock, waited-for failure */
} mh_claim;

/* Take the entry of interned `name`, waiting for another thread that owns
 * it.  Never runs plugin code. */
mh_claim mh_reg_claim(struct mh_host *h, const char *name, mh_module **mod,
                      mh_status *code, mh_error **err);

/* How many claims this thread has had refused as a cycle (MH_ECYCLE) or
 * a wait that would never end (MH_EDEADLOCK), ever: a caller compares two
 * readings to learn whether code it ran (a finder's open, importing) met
 * one -- a failure that depends on imports in progress, not settled. */
unsigned long mh_reg_refused_waits(void);

/* In a child of fork(), from the thread that forked (which goes on there,
 * the others do not): what it owns is still owned by a thread of this
 * process. */
void mh_reg_forked(void);

/* The owner finished: READY, visible to everyone, fini order recorded. */
void mh_reg_publish(struct mh_host *h, mh_module *mod);

/* The owner failed with error e (ownership of e is taken): the slot is
 * emptied so a later import starts over, waiters get copies of e, and the
 * entry is freed by whoever leaves it last.  Returns e's code; e goes to
 * *err (or is freed). */
mh_status mh_reg_abandon(struct mh_host *h, mh_module *mod, mh_error *e,
                         mh_error **err);

/* Mark `mod` as the module this thread is importing now / done with it
 * (the chain shown in a circular-import error). */
void mh_reg_enter(mh_module *mod);
void mh_reg_leave(mh_module *mod);

/* How many imports this thread has under way, one inside the other, and
 * the innermost one's name (NULL: none).  Each level takes stack (the
 * import, its loader, a Lua chunk's own frames), so nesting stops at
 * MH_IMPORT_DEPTH_MAX, as Lua's C calls stop at 200 (LUAI_MAXCCALLS). */
#define MH_IMPORT_DEPTH_MAX 200
int mh_reg_depth(void);

/* Is this thread short of stack for another import?  The depth alone
 * does not bound the stack: each Lua chunk runs on a Lua thread of its
 * own, whose C calls Lua counts from 0 (up to 200 of them a level), and
 * threads may have small stacks.  Short: less left below the caller than
 * the reserve, MH_IMPORT_STACK_MIN or a quarter of the thread's stack if
 * that is less (a small stack is guarded, not refused everything); *left
 * and *reserve say how much.  Not known (bounds glibc cannot give, or
 * running on another stack): never short. */
bool mh_reg_stack_short(size_t *left, size_t *reserve);
#if defined(__SANITIZE_ADDRESS__)
#define MH_ASAN_ 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MH_ASAN_ 1
#endif
#endif
#ifdef MH_ASAN_
#define MH_IMPORT_STACK_MIN (768u * 1024u) /* ASan's frames are larger */
#else
#define MH_IMPORT_STACK_MIN (256u * 1024u)
#endif

/* The last name this thread's imports searched the path for in vain
 * (interned), or NULL: set by each such import (or by a wait for another
 * thread's import of the name that did), cleared by the caller that
 * asks.  Tells "x is nowhere" from "x's import failed not finding
 * something else" without a second walk. */
void mh_reg_set_missing(const char *iname);
const char *mh_reg_missing(void);
const char *mh_reg_current_name(void);

/* The innermost module this thread is importing, or NULL. */
mh_module *mh_reg_current(void);

/* Unload everything: fini in reverse order of initialisation. */
void mh_reg_free(struct mh_host *h);

/* Record where mod was found: origin as the finder gave it (any string;
 * not kept).  MH_OK or MH_ENOMEM. */
mh_status mh_reg_set_origin(struct mh_host *h, mh_module *mod,
                            const char *origin);

/* mod's origin, interned (built and interned on first use); NULL when
 * that runs out of memory. */
const char *mh_reg_origin(const mh_module *mod);

/* For a message: the import's own answer while mod is in flight, else
 * mh_reg_origin, or "?". */
const char *mh_reg_where(const mh_module *mod);

#endif /* MH_CACHE_REGISTRY_H */
