/* A traced delivery's or call's span made current on its worker's thread,
 * the cheap way (see _speedups_deliver.c and run_observed in
 * _speedups_drain.c for deliveries, call_begin in _speedups_hooks.c and
 * run_call in _speedups_call.c for calls: the same entry serves both).
 *
 * Hub.delivery_started makes the listener's BusSpan current with
 * var.set(Context({SPAN_KEY: span})), and handler_returned leaves it with
 * var.reset(token): each a new mapping of the thread context's variables (a
 * HAMT), a token, and a span and a Context made and freed. That was half of
 * the worker's part of a traced delivery.
 *
 * Here a worker's thread keeps one entry: its thread context, that
 * context's variables before the set (base: none set), after it (with: the
 * API's variable holding the entry's Context), the unused token of that set,
 * and the span and the Context. The next delivery on the thread, when the
 * context's variables are still base, takes the span (its ids set anew) and
 * makes `with` the context's variables; leaving, it makes them base again.
 * Each a pointer swapped, with the thread's context version bumped, which is
 * what tells the variables' caches that the context changed (as
 * PyContext_Enter and PyContextVar_Set do). What a listener sees is the same:
 * var.get() is a Context {SPAN_KEY: span} whose span has the delivery's ids,
 * nothing else is set in the context, and the token in the scope undoes the
 * set when the Python hooks take over.
 *
 * An entry serves again only when no one else holds any of it once the
 * delivery is over: not the Context (a captured get_current(), or a mapping
 * derived from `with` that holds it: copy_context() and then a set; with no
 * other variable in `with`, every such mapping holds the Context itself),
 * not `with` (a copy_context() kept), not the span, and neither has a weak
 * reference or an attribute of its own. When a listener changed the
 * context's variables, leaving is var.reset(token), as in Python, and the
 * entry is dropped. Where the context layout is not the one probed
 * (CPython 3.11 to 3.13 share it: Include/internal/pycore_context.h), every
 * delivery sets and resets through the API.
 */
#include "_speedups.h"

/* A contextvars.Context as CPython 3.11 to 3.13 lay it out. */
typedef struct {
    PyObject_HEAD
    PyObject *prev;
    PyObject *vars; /* the variables: an immutable mapping (a HAMT) */
    PyObject *weakreflist;
    int entered;
} context_layout;

#define VARS(ctx) (((context_layout *)(ctx))->vars)

static int swap_inline; /* the layout probed, and behaving as the API does */

struct Entered {
    PyObject *thread_ctx; /* the thread's context: NULL while the entry is free */
    PyObject *base;       /* its variables with none set */
    PyObject *with;       /* and with the API's variable set to ctx */
    PyObject *undo;       /* the set's token, unused: var.reset(undo) undoes it */
    PyObject *span, *ctx; /* ctx is {SPAN_KEY: span} */
    PyObject *scope;      /* the last scope (span, undo, start_ns), or NULL */
    int busy;             /* a delivery is using it */
};

/* One entry per worker thread that takes turns with a few others. */
#define ENTERED_MAX 8
static Entered entered[ENTERED_MAX];
static int entered_next;

/* The context's variables made vars, as a set or a reset makes them. */
static inline void
vars_swap(PyThreadState *ts, PyObject *ctx, PyObject *vars)
{
    PyObject *old = VARS(ctx);
    VARS(ctx) = Py_NewRef(vars);
    Py_DECREF(old); /* never the last reference: the entry holds both */
    ts->context_ver++;
}

static void
entry_clear(Entered *e)
{
    Py_CLEAR(e->thread_ctx);
    Py_CLEAR(e->base);
    Py_CLEAR(e->with);
    Py_CLEAR(e->undo);
    Py_CLEAR(e->span);
    Py_CLEAR(e->ctx);
    Py_CLEAR(e->scope);
    e->busy = 0;
}

int
probe_scopes(void)
{
    swap_inline = 0;
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
    PyThreadState *ts = PyThreadState_Get();
    PyObject *ctx = PyContext_New();
    PyObject *var = PyContextVar_New("bus_probe", NULL);
    PyObject *empty = NULL, *full = NULL, *token = NULL, *seen = NULL;
    int ok = ctx != NULL && var != NULL && Py_IS_TYPE(ctx, &PyContext_Type) &&
             ((context_layout *)ctx)->prev == NULL && ((context_layout *)ctx)->entered == 0 &&
             VARS(ctx) != NULL && PyObject_Length(ctx) == 0 && PyContext_Enter(ctx) == 0;
    if (!ok) {
        goto done;
    }
    ok = ts->context == ctx && ((context_layout *)ctx)->entered == 1;
    empty = Py_NewRef(VARS(ctx));
    ok = ok && (token = PyContextVar_Set(var, Py_True)) != NULL && VARS(ctx) != empty &&
         PyObject_Length(ctx) == 1;
    if (ok) {
        full = Py_NewRef(VARS(ctx));
        vars_swap(ts, ctx, empty);
        ok = PyContextVar_Get(var, NULL, &seen) == 0 && seen == NULL;
        vars_swap(ts, ctx, full);
        ok = ok && PyContextVar_Get(var, NULL, &seen) == 0 && seen == Py_True;
        Py_CLEAR(seen);
        ok = ok && PyContextVar_Reset(var, token) == 0 && PyObject_Length(ctx) == 0;
    }
    if (PyContext_Exit(ctx) < 0) {
        ok = 0;
    }
done:
    PyErr_Clear(); /* a failed probe: the API every time */
    Py_XDECREF(seen);
    Py_XDECREF(token);
    Py_XDECREF(full);
    Py_XDECREF(empty);
    Py_XDECREF(var);
    Py_XDECREF(ctx);
    swap_inline = ok;
#endif
    return 0;
}

PyObject *
var_set(PyObject *var, PyObject *value)
{
    /* CPython 3.11 to 3.13 set the variable before they look whether the
     * token was made: a failed set may leave it set, with no token to undo
     * it. The variables before the set are put back then. */
    PyThreadState *ts = PyThreadState_Get();
    if (swap_inline && ts->context == NULL) {
        PyObject *seen = NULL; /* a get makes the thread's context */
        if (PyContextVar_Get(var, NULL, &seen) < 0) {
            return NULL;
        }
        Py_XDECREF(seen);
    }
    PyObject *ctx = swap_inline ? ts->context : NULL;
    PyObject *before = ctx == NULL ? NULL : Py_NewRef(VARS(ctx));
    PyObject *token = PyContextVar_Set(var, value);
    if (token == NULL && before != NULL && ts->context == ctx && VARS(ctx) != before) {
        PyObject *set = VARS(ctx);
        VARS(ctx) = Py_NewRef(before);
        ts->context_ver++;
        Py_DECREF(set);
    }
    Py_XDECREF(before);
    return token;
}

/* The span's slots as BusSpan.__init__(trace_id, span_id) sets them. */
static void
span_init(PyObject *span, PyObject *trace_id, PyObject *span_id)
{
    slot_set(span, p_trace_id, trace_id);
    slot_set(span, p_span_id, span_id);
    slot_set(span, p_live, Py_True);
    slot_set(span, p_context, Py_None);
    slot_set(span, p_extras, Py_None);
}

PyObject *
span_enter(PyObject *trace_id, PyObject *span_id, Entered **state, PyObject **token)
{
    *state = NULL;
    *token = NULL;
    PyThreadState *ts = PyThreadState_Get();
    PyObject *thread_ctx = swap_inline ? ts->context : NULL;
    Entered *e = NULL, *free_entry = NULL;
    for (int i = 0; thread_ctx != NULL && i < ENTERED_MAX; i++) {
        if (entered[i].thread_ctx == thread_ctx) {
            e = &entered[i];
        }
        else if (entered[i].thread_ctx == NULL && free_entry == NULL) {
            free_entry = &entered[i];
        }
    }
    if (e != NULL && !e->busy && VARS(thread_ctx) == e->base) {
        /* the thread's spare span, made current by the entry's variables */
        e->busy = 1;
        span_init(e->span, trace_id, span_id);
        vars_swap(ts, thread_ctx, e->with);
        *state = e;
        *token = Py_NewRef(e->undo);
        return Py_NewRef(e->span);
    }
    if (e != NULL && e->busy) {
        thread_ctx = NULL; /* in use below this delivery: the API, and no entry */
    }
    else if (e != NULL) {
        entry_clear(e); /* the variables changed since: made afresh */
    }
    /* Through the API; kept for the next delivery where nothing else is set. */
    Py_ssize_t set = thread_ctx == NULL ? -1 : PyObject_Length(thread_ctx);
    if (set < 0) {
        PyErr_Clear(); /* not kept: the API alone */
    }
    PyObject *base = set == 0 ? Py_NewRef(VARS(thread_ctx)) : NULL;
    PyObject *span = enter_span(trace_id, span_id, Py_None, token);
    PyObject *ctx = NULL;
    if (span != NULL && base != NULL && ts->context == thread_ctx &&
        PyContextVar_Get(context_var, NULL, &ctx) < 0) {
        PyErr_Clear(); /* not kept */
        ctx = NULL;
    }
    if (ctx != NULL && e == NULL && (e = free_entry) == NULL) {
        e = &entered[entered_next];
        entered_next = (entered_next + 1) % ENTERED_MAX;
        if (e->busy) {
            e = NULL; /* every entry in use: this one is not kept */
        }
        else {
            entry_clear(e);
        }
    }
    if (ctx != NULL && e != NULL) {
        *e = (Entered){Py_NewRef(thread_ctx), base, Py_NewRef(VARS(thread_ctx)),
                       Py_NewRef(*token), Py_NewRef(span), ctx, NULL, 1};
        base = ctx = NULL;
        *state = e;
    }
    Py_XDECREF(base);
    Py_XDECREF(ctx);
    return span;
}

int
span_leave(PyObject *token, Entered **state)
{
    Entered *e = *state;
    PyThreadState *ts = PyThreadState_Get();
    if (e != NULL && ts->context == e->thread_ctx && VARS(e->thread_ctx) == e->with) {
        vars_swap(ts, e->thread_ctx, e->base);
        return 0;
    }
    /* The listener changed the context (or there is no entry): var.reset,
     * as Hub.handler_returned does; the entry's token is spent. */
    if (e != NULL) {
        *state = NULL;
        entry_clear(e);
    }
    return PyContextVar_Reset(context_var, token);
}

/* An object's attributes of its own: 1 none, 0 some, -1 on error. */
static int
bare(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (type->tp_weaklistoffset > 0 &&
        *(PyObject **)((char *)obj + type->tp_weaklistoffset) != NULL) {
        return 0;
    }
    if (type->tp_dictoffset == 0) {
        return 1;
    }
    /* The first look makes an empty __dict__, which a kept object keeps. */
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL) {
        return -1;
    }
    int empty = PyDict_CheckExact(dict) && PyDict_GET_SIZE(dict) == 0;
    Py_DECREF(dict);
    return empty;
}

PyObject *
span_scope(Entered *e, Py_ssize_t size)
{
    /* Taken out either way: one that does not serve is let go, so that the
     * scope this run makes may be kept in its place (span_over). */
    PyObject *scope = e->scope;
    e->scope = NULL;
    if (scope == NULL || Py_REFCNT(scope) != 1 || PyTuple_GET_SIZE(scope) != size ||
        PyTuple_GET_ITEM(scope, 0) != e->span || PyTuple_GET_ITEM(scope, 1) != e->undo) {
        Py_XDECREF(scope);
        return NULL;
    }
    return scope;
}

void
span_over(Entered *e, PyObject *scope)
{
    if (e == NULL) {
        Py_XDECREF(scope);
        return;
    }
    /* The scope, held here only, may serve as the next one of its size (a
     * call's (span, token), a delivery's (span, token, start_ns)): no one can
     * see its start_ns change (CPython's zip reuses its result tuple so too). */
    int spans = 2;
    if (scope != NULL && Py_REFCNT(scope) == 1 && PyTuple_CheckExact(scope) &&
        (PyTuple_GET_SIZE(scope) == 2 || PyTuple_GET_SIZE(scope) == 3) &&
        PyTuple_GET_ITEM(scope, 0) == e->span &&
        PyTuple_GET_ITEM(scope, 1) == e->undo && e->scope == NULL) {
        e->scope = scope;
        spans = 3;
    }
    else {
        Py_XDECREF(scope);
    }
    /* with: the entry's; ctx: the entry's and with's; span: the entry's,
     * ctx's (and the kept scope's) */
    PyObject *key, *held;
    Py_ssize_t at = 0;
    int kept = Py_REFCNT(e->with) == 1 && Py_REFCNT(e->ctx) == 2 && Py_REFCNT(e->span) == spans &&
               Py_IS_TYPE(e->span, Span_type) &&
               Py_IS_TYPE(e->ctx, (PyTypeObject *)context_type) && PyDict_GET_SIZE(e->ctx) == 1 &&
               PyDict_Next(e->ctx, &at, &key, &held) && key == span_key && held == e->span;
    kept = kept ? bare(e->span) : 0;
    kept = kept > 0 ? bare(e->ctx) : kept;
    if (kept < 0) {
        PyErr_Clear(); /* not kept: nothing is lost */
    }
    if (kept > 0) {
        e->busy = 0;
    }
    else {
        entry_clear(e);
    }
}

void
span_drop(Entered *e)
{
    if (e != NULL) {
        entry_clear(e);
    }
}
