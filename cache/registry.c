/*
 * cache/registry.c -- the module registry: which modules are loaded, which
 * are being loaded and by whom, and the order to unload them in.
 *
 * Concurrency
 * -----------
 * The fast path (mh_reg_lookup) is one lock-free intern lookup followed by
 * an acquire load of the name's `module` slot, which only ever holds READY
 * modules.
 *
 * Everything else happens under host->lock, held only for bookkeeping:
 * claim an entry (or find one in flight), publish it, or abandon it.  The
 * owning thread runs find, dlopen and init with no lock held, so a plugin's
 * init may import other modules.
 *
 * Three ways an import can wait forever, and what is done about each:
 *   - the owner imports the module again from its own init (a -> b -> a):
 *     the entry's owner is this thread, so the claim fails with MH_ECYCLE
 *     and the chain, rebuilt from each entry's `importer` link;
 *   - thread 1 owns a and waits for b while thread 2 owns b and waits for
 *     a: before waiting, follow owner -> blocked_on -> owner ...; reaching
 *     this thread means the wait would never end: MH_EDEADLOCK (CPython's
 *     _ModuleLock.has_deadlock);
 *   - the same through a search path entry: thread 1 opens an entry whose
 *     finder imports b, owned by thread 2, which waits for the entry (an
 *     mh_olock).  The walk follows such waits too; a cycle through one is
 *     broken there, not failed: that waiter passes over the entry (which
 *     cannot serve anything before the import its opener waits for is
 *     done) and both imports go on;
 *   - an owner that fails: waiters wake and get a copy of its error.
 */
#include "host/internal.h"
#include "loaders/loader.h"
#include "finders/finder.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Per-thread import state.  Its address identifies the thread. */
typedef struct mh_tstate {
    _Atomic(mh_module *) blocked_on; /* entry this thread waits for */
    _Atomic(mh_olock *) blocked_lock; /* or the olock it waits for */
    _Atomic(mh_host *) blocked_host; /* the host of either: set and
                                        cleared under its lock, so another
                                        host's objects are never touched */
    bool wait_broken;                /* that wait is over: give up (set
                                        under the olock's host's lock) */
    mh_module *current;              /* innermost module being imported */
    int depth;                       /* imports under way, nested */
    _Atomic unsigned forks;          /* mh_fork_count when it last took an
                                        import or an opening lock: another
                                        count means a thread of the parent
                                        of fork(), not in this process */
} mh_tstate;

static _Thread_local mh_tstate tls;

/* Does owner live in this process?  A thread that was importing, or
 * opening an entry, when another forked is not in the child, and waiting
 * for it there would never end. */
static bool here(const mh_tstate *owner)
{
    return atomic_load_explicit(&owner->forks, memory_order_relaxed) ==
           mh_fork_count();
}

void mh_reg_forked(void)
{
    atomic_store_explicit(&tls.forks, mh_fork_count(), memory_order_relaxed);
}

void mh_reg_init(mh_registry *r)
{
    memset(r, 0, sizeof *r);
    pthread_cond_init(&r->cond, NULL);
}

mh_module *mh_reg_lookup(mh_host *h, const char *name, size_t len)
{
    return mh_int_module(&h->intern, name, len);
}

static mh_module *pending_find(mh_registry *reg, const char *name)
{
    for (mh_module *m = reg->pending; m; m = m->flight->next_pending)
        if (m->name == name)
            return m;
    return NULL;
}

static void pending_remove(mh_registry *reg, mh_module *mod)
{
    for (mh_module **p = &reg->pending; *p; p = &(*p)->flight->next_pending)
        if (*p == mod) {
            *p = mod->flight->next_pending;
            return;
        }
}

static void flight_free(mh_host *h, mh_flight *f)
{
    if (!f)
        return;
    mh_error_free(f->failure);
    mh_mem_strfree(h, f->init_message);
    mh_mem_free(h, f, sizeof *f);
}

static void entry_free(mh_host *h, mh_module *mod)
{
    flight_free(h, mod->flight);
    mh_manifest_free(mod->manifest);
    mh_mem_free(h, mod, sizeof *mod);
}

/* "a -> b -> a": the chain from `target` down to this thread's current
 * import, then `target` again. */
static void cycle_chain(mh_buf *b, const mh_module *target)
{
    const mh_module *stack[64];
    size_t n = 0;
    for (const mh_module *m = tls.current; m && n < MH_ARRAY_LEN(stack);
         m = m->flight->importer) {
        stack[n++] = m;
        if (m == target)
            break;
    }
    while (n > 0)
        mh_buf_printf(b, "%s -> ", stack[--n]->name);
    mh_buf_puts(b, target->name);
}

void mh_reg_import_chain(mh_buf *b, const char *next)
{
    const mh_module *stack[64];
    size_t n = 0;
    for (const mh_module *m = tls.current; m && n < MH_ARRAY_LEN(stack);
         m = m->flight->importer)
        stack[n++] = m;
    while (n > 0)
        mh_buf_printf(b, "%s -> ", stack[--n]->name);
    mh_buf_puts(b, next);
}

static const char *who(const mh_tstate *t)
{
    return t == &tls ? "this thread" : "another thread";
}

/* Would waiting for thread `t` close a cycle of threads waiting for each
 * other?  Each hop is told in `chain`.  *olock_waiter (if asked for) gets
 * the first thread on the way that waits for an olock, whose wait can be
 * broken.  (host->lock held: only waits in this host are followed.) */
static bool would_deadlock(mh_host *h, mh_tstate *t, mh_buf *chain,
                           mh_tstate **olock_waiter)
{
    for (int hops = 0; t && hops < 1024; hops++) {
        if (t == &tls)
            return true;
        if (atomic_load_explicit(&t->blocked_host, memory_order_relaxed) != h)
            return false; /* waits in another host, or not at all */
        mh_module *m = atomic_load_explicit(&t->blocked_on,
                                            memory_order_relaxed);
        mh_olock *l = atomic_load_explicit(&t->blocked_lock,
                                           memory_order_relaxed);
        if (m) {
            t = m->flight ? m->flight->owner : NULL;
            mh_buf_printf(chain, " waits for '%s' (being imported by %s)",
                          m->name, who(t));
        } else if (l) {
            if (olock_waiter && !*olock_waiter)
                *olock_waiter = t;
            t = atomic_load_explicit(&l->owner, memory_order_relaxed);
            mh_buf_printf(chain, " waits for %s '%s' (held by %s)", l->kind,
                          l->what, who(t));
        } else {
            return false;
        }
    }
    return false;
}

static _Thread_local unsigned long tl_refused;

unsigned long mh_reg_refused_waits(void)
{
    return tl_refused;
}

static mh_claim claim_error(mh_host *h, mh_status *code, mh_error **err,
                            mh_status c, mh_buf *msg)
{
    if (c == MH_ECYCLE || c == MH_EDEADLOCK)
        tl_refused++;
    if (msg->failed)
        c = MH_ENOMEM;
    *code = mh_err(h, err, c, "%s",
                   msg->failed ? "out of memory" : mh_buf_str(msg));
    mh_buf_free(msg);
    return MH_CLAIM_ERROR;
}

mh_claim mh_reg_claim(mh_host *h, const char *name, mh_module **out,
                      mh_status *code, mh_error **err)
{
    mh_registry *reg = &h->registry;
    mh_iname *rec = mh_int_record(name);
    mh_buf msg;

    *out = NULL;
    pthread_mutex_lock(&h->lock);
    mh_module *mod = atomic_load_explicit(&rec->module, memory_order_acquire);
    if (mod) {
        pthread_mutex_unlock(&h->lock);
        *out = mod;
        return MH_CLAIM_READY;
    }
    mod = pending_find(reg, name);
    if (!mod || atomic_load(&mod->state) == MH_STATE_FAILED) {
        /* A FAILED entry still in the list only waits for its waiters to
         * leave; a new import starts afresh beside it. */
        mod = mh_mem_calloc(h, 1, sizeof *mod);
        mh_flight *f = mod ? mh_mem_calloc(h, 1, sizeof *f) : NULL;
        if (!f) {
            mh_mem_free(h, mod, sizeof *mod);
            pthread_mutex_unlock(&h->lock);
            *code = mh_err(h, err, MH_ENOMEM,
                           "out of memory importing module '%s'", name);
            return MH_CLAIM_ERROR;
        }
        mod->host = h;
        mod->name = name;
        mod->fd = -1;
        atomic_init(&mod->state, MH_STATE_INITIALIZING);
        mod->flight = f;
        f->owner = &tls;
        atomic_store_explicit(&tls.forks, mh_fork_count(),
                              memory_order_relaxed);
        f->importer = tls.current;
        f->next_pending = reg->pending;
        reg->pending = mod;
        pthread_mutex_unlock(&h->lock);
        *out = mod;
        return MH_CLAIM_OWNED;
    }

    /* In flight.  By this thread: a circular import. */
    mh_buf_init(&msg, h, 0);
    if (mod->flight->owner == &tls) {
        pthread_mutex_unlock(&h->lock);
        mh_buf_printf(&msg, "circular import of module '%s': ", name);
        cycle_chain(&msg, mod);
        return claim_error(h, code, err, MH_ECYCLE, &msg);
    }
    /* By another thread: wait, unless that would never end.  A cycle
     * through a thread waiting for an olock is broken there. */
    mh_tstate *owner = mod->flight->owner;
    if (!here(owner)) {
        pthread_mutex_unlock(&h->lock);
        mh_buf_printf(&msg, "import of module '%s' cannot finish in this "
                      "process: another thread was importing it when the "
                      "process forked, and that thread is not in this child "
                      "of fork()", name);
        return claim_error(h, code, err, MH_EDEADLOCK, &msg);
    }
    mh_tstate *breakable = NULL;
    mh_buf_printf(&msg, "import of module '%s' would deadlock: '%s' (being "
                  "imported by %s)", name, name, who(owner));
    if (would_deadlock(h, owner, &msg, &breakable)) {
        if (!breakable) {
            pthread_mutex_unlock(&h->lock);
            return claim_error(h, code, err, MH_EDEADLOCK, &msg);
        }
        breakable->wait_broken = true;
        pthread_cond_broadcast(&reg->cond);
    }
    mh_buf_free(&msg);
    mod->waiters++;
    atomic_store_explicit(&tls.blocked_host, h, memory_order_relaxed);
    atomic_store_explicit(&tls.blocked_on, mod, memory_order_relaxed);
    while (atomic_load(&mod->state) == MH_STATE_INITIALIZING)
        pthread_cond_wait(&reg->cond, &h->lock);
    atomic_store_explicit(&tls.blocked_on, NULL, memory_order_relaxed);
    atomic_store_explicit(&tls.blocked_host, NULL, memory_order_relaxed);
    mod->waiters--;
    if (atomic_load(&mod->state) == MH_STATE_READY) {
        pthread_mutex_unlock(&h->lock);
        *out = mod;
        return MH_CLAIM_READY;
    }
    mh_error *copy = mh_err_dup(h, mod->flight->failure);
    bool missing = mod->flight->name_missing;
    bool last = mod->waiters == 0;
    if (last)
        pending_remove(reg, mod);
    pthread_mutex_unlock(&h->lock);
    if (last)
        entry_free(h, mod);
    if (missing) /* as if this thread's own walk had missed it */
        mh_reg_set_missing(name);
    *code = mh_err_give(copy, err);
    return MH_CLAIM_ERROR;
}

mh_olock_r mh_reg_olock_take(mh_olock *l, mh_buf *why)
{
    if (mh_reg_olock_mine(l))
        return MH_OLOCK_MINE;
    mh_host *h = l->host;
    mh_olock_r r = MH_OLOCK_TAKEN;
    pthread_mutex_lock(&h->lock);
    tls.wait_broken = false;
    for (;;) {
        mh_tstate *o = atomic_load_explicit(&l->owner, memory_order_relaxed);
        if (!o) {
            atomic_store_explicit(&l->owner, &tls, memory_order_relaxed);
            atomic_store_explicit(&tls.forks, mh_fork_count(),
                                  memory_order_relaxed);
            break;
        }
        if (!here(o)) { /* a thread of the parent of fork(): never back */
            if (why)
                mh_buf_puts(why, "a thread that was opening it when the "
                            "process forked, which is not in this child");
            r = MH_OLOCK_BUSY;
            break;
        }
        mh_buf chain;
        mh_buf_init(&chain, h, 0);
        mh_buf_puts(&chain, "another thread, which");
        bool cycle = would_deadlock(h, o, &chain, NULL) || tls.wait_broken;
        if (cycle && why)
            mh_buf_puts(why, mh_buf_str(&chain));
        mh_buf_free(&chain);
        if (cycle) {
            r = MH_OLOCK_BUSY;
            break;
        }
        atomic_store_explicit(&tls.blocked_host, h, memory_order_relaxed);
        atomic_store_explicit(&tls.blocked_lock, l, memory_order_relaxed);
        pthread_cond_wait(&h->registry.cond, &h->lock);
        atomic_store_explicit(&tls.blocked_lock, NULL, memory_order_relaxed);
        atomic_store_explicit(&tls.blocked_host, NULL, memory_order_relaxed);
    }
    tls.wait_broken = false;
    pthread_mutex_unlock(&h->lock);
    return r;
}

void mh_reg_olock_give(mh_olock *l)
{
    mh_host *h = l->host;
    pthread_mutex_lock(&h->lock);
    atomic_store_explicit(&l->owner, NULL, memory_order_relaxed);
    pthread_cond_broadcast(&h->registry.cond);
    pthread_mutex_unlock(&h->lock);
}

bool mh_reg_olock_mine(const mh_olock *l)
{
    return atomic_load_explicit(&l->owner, memory_order_relaxed) == &tls;
}

void mh_reg_publish(mh_host *h, mh_module *mod)
{
    mh_registry *reg = &h->registry;
    pthread_mutex_lock(&h->lock);
    pending_remove(reg, mod);
    mh_flight *done = mod->flight;
    mod->flight = NULL;
    mod->older = reg->newest;
    reg->newest = mod;
    reg->count++;
    atomic_store_explicit(&mod->state, MH_STATE_READY, memory_order_release);
    atomic_store_explicit(&mh_int_record(mod->name)->module, mod,
                          memory_order_release);
    pthread_cond_broadcast(&h->registry.cond);
    pthread_mutex_unlock(&h->lock);
    flight_free(h, done);
}

mh_status mh_reg_abandon(mh_host *h, mh_module *mod, mh_error *e,
                         mh_error **err)
{
    mh_registry *reg = &h->registry;
    pthread_mutex_lock(&h->lock);
    mod->flight->owner = NULL;
    atomic_store(&mod->state, MH_STATE_FAILED);
    bool alone = mod->waiters == 0;
    if (alone)
        pending_remove(reg, mod);
    else
        mod->flight->failure = mh_err_dup(h, e);
    pthread_cond_broadcast(&h->registry.cond);
    pthread_mutex_unlock(&h->lock);
    if (alone)
        entry_free(h, mod);
    return mh_err_give(e, err);
}

void mh_reg_enter(mh_module *mod)
{
    tls.current = mod;
    tls.depth++;
}

void mh_reg_leave(mh_module *mod)
{
    tls.current = mod->flight->importer;
    tls.depth--;
}

int mh_reg_depth(void)
{
    return tls.depth;
}

static _Thread_local const char *tl_missing;

void mh_reg_set_missing(const char *iname)
{
    tl_missing = iname;
}

const char *mh_reg_missing(void)
{
    return tl_missing;
}

/* This thread's stack: its bounds, looked up once, and the reserve an
 * import needs on it. */
static _Thread_local uintptr_t stack_lo, stack_hi;
static _Thread_local size_t stack_reserve;
static _Thread_local bool stack_looked;

static void stack_look(uintptr_t at)
{
    stack_looked = true;
    pthread_attr_t a;
    void *lo;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        if (pthread_attr_getstack(&a, &lo, &size) == 0) {
            stack_lo = (uintptr_t)lo;
            stack_hi = stack_lo + size;
        }
        pthread_attr_destroy(&a);
    }
    stack_reserve = size / 4 < MH_IMPORT_STACK_MIN ? size / 4
                                                   : MH_IMPORT_STACK_MIN;
    /* The main thread's bounds come from /proc/self/maps and the stack
     * limit; under valgrind they are not the stack it runs on (its first
     * import found hardly any below it).  No guard there then but the
     * depth.  Other threads' bounds are their own allocation's. */
    if (stack_lo && getpid() == (pid_t)syscall(SYS_gettid) &&
        at > stack_lo && at <= stack_hi &&
        at - stack_lo < stack_reserve + 64u * 1024u)
        stack_lo = 0;
}

bool mh_reg_stack_short(size_t *left, size_t *reserve)
{
    uintptr_t at = (uintptr_t)__builtin_frame_address(0);
    if (!stack_looked)
        stack_look(at);
    /* Not known, or running elsewhere (a coroutine's stack, a signal's
     * alternate one). */
    if (!stack_lo || at <= stack_lo || at > stack_hi)
        return false;
    *left = at - stack_lo;
    *reserve = stack_reserve;
    return *left < stack_reserve;
}

const char *mh_reg_current_name(void)
{
    return tls.current ? tls.current->name : NULL;
}

mh_module *mh_reg_current(void)
{
    return tls.current;
}

void mh_reg_free(mh_host *h)
{
    mh_registry *reg = &h->registry;
    /* Teardown in two passes.  First every fini, newest module first, with
     * no module unmapped yet: a fini may still call into (or, through the
     * API, look up) a module finalised before it, and finds its code
     * mapped.  Imports are refused from here on (h->closing), and the fast
     * path sees no module.  Then every dlclose. */
    atomic_store(&h->closing, true);
    for (mh_module *m = reg->newest; m; m = m->older)
        atomic_store_explicit(&mh_int_record(m->name)->module, NULL,
                              memory_order_release);
    for (mh_module *m = reg->newest; m; m = m->older)
        mh_ld_fini(h, m);
    /* The Lua state goes before any native code is unmapped: its __gc
     * handlers may live in Lua C modules loaded from the search path. */
    for (mh_module *m = reg->newest; m; m = m->older)
        if (m->kind == MH_KIND_LUA)
            mh_lua_unload(h, m);
    mh_lua_close(h);
    while (reg->newest) {
        mh_module *mod = reg->newest;
        reg->newest = mod->older;
        mh_ld_unload(h, mod);
        entry_free(h, mod);
    }
    reg->count = 0;
    pthread_cond_destroy(&reg->cond);
}

/* ---- public API --------------------------------------------------------- */

mh_module *mh_host_module(mh_host *host, const char *name)
{
    if (!host || !name)
        return NULL;
    return mh_reg_lookup(host, name, strlen(name));
}

size_t mh_host_module_count(mh_host *host)
{
    if (!host)
        return 0;
    pthread_mutex_lock(&host->lock);
    size_t n = host->registry.count;
    pthread_mutex_unlock(&host->lock);
    return n;
}

/* ---- origins -------------------------------------------------------- */

/* The suffixes an origin may end in after the name's relative path;
 * index 0: none (the base is the whole origin). */
static const char *const tails[] = {NULL, MH_NATIVE_SUFFIX, MH_LUA_SUFFIX,
                                    MH_LUAC_SUFFIX};

#define ORIGIN_MAX (PATH_MAX + MH_NAME_MAX + 16) /* rebuilt on the stack */

mh_status mh_reg_set_origin(mh_host *h, mh_module *mod, const char *origin)
{
    char rel[MH_NAME_MAX + 1];
    size_t rl = mh_name_relpath(mod->name, "", rel, sizeof rel);
    size_t ol = strlen(origin);
    uint8_t t = 0;
    for (size_t i = 1; rl && ol < ORIGIN_MAX && i < MH_ARRAY_LEN(tails) && !t;
         i++) {
        size_t tl = strlen(tails[i]);
        if (ol >= rl + tl && memcmp(origin + ol - tl, tails[i], tl) == 0 &&
            memcmp(origin + ol - tl - rl, rel, rl) == 0)
            t = (uint8_t)i;
    }
    size_t bl = t ? ol - rl - strlen(tails[t]) : ol;
    const char *base = mh_int_str(h, origin, bl);
    if (!base)
        return MH_ENOMEM;
    mod->origin_base = base;
    mod->origin_tail = t;
    return MH_OK;
}

const char *mh_reg_origin(const mh_module *mod)
{
    if (!mod->origin_tail)
        return mod->origin_base;
    /* Interned, not kept in the entry: asked again, it is a lookup. */
    const char *tail = tails[mod->origin_tail];
    size_t bl = mh_int_record(mod->origin_base)->len;
    size_t nl = mh_int_record(mod->name)->len, tl = strlen(tail);
    char buf[ORIGIN_MAX]; /* holds it: see mh_reg_set_origin */
    memcpy(buf, mod->origin_base, bl);
    mh_name_relpath(mod->name, tail, buf + bl, sizeof buf - bl);
    return mh_int_str(mod->host, buf, bl + nl + tl);
}

const char *mh_reg_where(const mh_module *mod)
{
    if (mod->flight && mod->flight->origin)
        return mod->flight->origin; /* the owner's, while it imports */
    const char *o = mh_reg_origin(mod);
    return o ? o : "?";
}
