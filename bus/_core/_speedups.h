/* What the files of the C accelerator share (see _speedups.c). */
#ifndef BUS_SPEEDUPS_H
#define BUS_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* Nothing here is for other objects to link against: without this, a name
 * the C library also exports (it has an advance(), for one) would bind to
 * the library's function rather than to ours. Only PyInit__speedups, which
 * Python declares, is exported. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* What configure() is given and works out (defined in _speedups.c). */
extern PyTypeObject *Runtime_type, *Handler_type, *Stats_type, *Worker_type;
extern PyObject *queue_qsize, *queue_put, *deque_append, *one, *no_kwargs;
extern Py_ssize_t off_h_dispatched, off_h_destination, off_h_fn, off_h_stats, off_h_lane;
extern Py_ssize_t off_s_calls, off_s_latencies;
extern Py_ssize_t off_w_event, off_w_since, off_w_current, off_w_handled, off_w_done;
extern PyObject *s_closing, *s_router, *s_routes, *s_observer, *s_outlet, *s_accepting,
    *s_queue, *s_maxsize, *s_posted, *s_after_post, *s_fail_queued, *s_post, *s_not_delivered,
    *s_event_fired, *s_delivery_queued, *s_delivery_refused, *s_event_posted, *s_waits;

/* itertools.count and queue.SimpleQueue as CPython 3.11 lays them out. Each
 * layout is used only after configure() has probed it on a live object (see
 * probe_layouts); where it differs, their methods are called instead. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t cnt; /* the next value, while long_cnt is NULL */
    PyObject *long_cnt;
    PyObject *long_step;
} count_layout;

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    int locked;
    PyObject *lst;
    Py_ssize_t lst_pos; /* items before it were taken */
    PyObject *weakreflist;
} queue_layout;

extern PyTypeObject *count_type, *queue_type;
extern int count_inline, queue_inline;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static inline void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

/* A dict's version: CPython 3.11 gives every dict a new tag whenever it
 * changes (PEP 509), unique across dicts, so an unchanged (dict, tag) pair
 * means that what was read from that dict still holds. Later versions drop
 * the tag: every read is then made afresh. */
#if PY_VERSION_HEX < 0x030C0000
#define DICT_TAG(dict) (((PyDictObject *)(dict))->ma_version_tag)
#else
#define DICT_TAG(dict) ((uint64_t)0)
#endif
#define TAG_UNKNOWN ((uint64_t)0) /* never a tag of a live dict */

/* What the last fire_event read, each with the dict it came from and that
 * dict's tag: the same dict, unchanged, gives the same answer. The dicts are
 * compared by address and tag only (a new dict never reuses a tag), and what
 * is kept from them is borrowed: it is alive while its dict holds it. */
typedef struct {
    PyObject *bus_dict;    /* the bus's __dict__ ... */
    uint64_t bus_tag;
    PyObject *router;      /* ... held an open, unobserved bus's router */
    PyObject *router_dict; /* the router's __dict__ ... */
    uint64_t router_tag;
    PyObject *routes;      /* ... held this route cache (commands: its commands) */
    uint64_t routes_tag;
    PyObject *name;        /* a strong reference: compared by address */
    PyObject *listeners;   /* routes[name] */
    PyObject *observer;    /* execute_command: the bus's observer then, and */
    PyObject *waits;       /* its wait graph */
} Seen;

typedef struct {
    PyObject_HEAD
    PyObject *fallback; /* the Python function: the reference, and the slow path */
    PyObject *dict;     /* __doc__, __wrapped__ and friends, for inspect */
    vectorcallfunc vectorcall;
    Seen seen;
} Wrapper;

/* _speedups_fire.c: fire_event, and what every Wrapper shares */
extern PyTypeObject FireEvent_Type;
/* The router's table key (_routes, _commands) of an open bus (for events,
 * one without a transport), its observer and wait graph in self->seen; NULL
 * (maybe with an error) when the Python function must take the call. Borrowed. */
PyObject *routing_table(Wrapper *self, PyObject *bus, PyObject *key, int events);
PyObject *wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwds, vectorcallfunc vectorcall);

/* The type of a Wrapper whose calls go to vectorcall first, made by new. */
#define WRAPPER_TYPE(name, doc, new)                                                            \
    {                                                                                          \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bus._core._speedups." name, .tp_doc = doc,   \
        .tp_basicsize = sizeof(Wrapper),                                                       \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |     \
                    Py_TPFLAGS_METHOD_DESCRIPTOR,                                              \
        .tp_new = new, .tp_dealloc = (destructor)wrapper_dealloc,                              \
        .tp_traverse = (traverseproc)wrapper_traverse, .tp_clear = (inquiry)wrapper_clear,     \
        .tp_call = PyVectorcall_Call, .tp_vectorcall_offset = offsetof(Wrapper, vectorcall),   \
        .tp_descr_get = wrapper_get, .tp_dictoffset = offsetof(Wrapper, dict),                 \
    }
PyObject *wrapper_get(PyObject *self, PyObject *obj, PyObject *type);
int wrapper_traverse(Wrapper *self, visitproc visit, void *arg);
int wrapper_clear(Wrapper *self);
void wrapper_dealloc(Wrapper *self);

/* _speedups.c */
/* The exception being raised, taken: *error the instance (with its traceback
 * on it), *type and *traceback to release with it. */
void take_error(PyObject **type, PyObject **error, PyObject **traceback);
int slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset);
double perf_counter(void);
Py_ssize_t queue_size(PyObject *queue);
int call_discard(PyObject *callable, PyObject *const *args, size_t nargs);
int count_next(PyObject *counter); /* next(counter), the value unread */
/* The keyword arguments of a vectorcall as a new dict (values: after the positional ones). */
PyObject *keywords(PyObject *const *values, PyObject *kwnames);

/* What a handler's local mailbox keeps for as long as the handler lives, made
 * on its first event and kept in Handler.lane: its runtime's __dict__, _queue,
 * _posted and maxsize, which never change, and what was last read of
 * accepting and _after_post, which do, with the tag of the __dict__ then. */
typedef struct {
    PyObject_HEAD
    PyObject *dict;
    PyObject *queue;
    PyObject *posted;
    PyObject *maxsize;
    Py_ssize_t bound; /* maxsize; PY_SSIZE_T_MAX when it is larger */
    uint64_t tag;
    int accepting;
    PyObject *after; /* borrowed from dict, valid while tag holds */
} Lane;

/* _speedups_lane.c: the firing side's mailboxes */
extern PyTypeObject Lane_Type;
Lane *lane_ready(PyObject *handler, PyObject *runtime, int call);
int lane_put(Lane *lane, PyObject *runtime, PyObject *item);
int deliver(PyObject *bus, PyObject *handler, PyObject *args, PyObject *kwargs, PyObject *name,
            PyObject *observer, PyObject *ticket);


/* _speedups_drain.c */
PyObject *drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
int slot_increment(PyObject *obj, Py_ssize_t off);

/* worker.since = perf_counter(), its start in *start; the float, a new reference. */
static inline PyObject *
mark_start(PyObject *worker, double *start)
{
    *start = perf_counter();
    PyObject *since = SLOT(worker, off_w_since);
    if (since != NULL && PyFloat_CheckExact(since) && Py_REFCNT(since) == 1) {
        /* Only the worker holds the last start (a reader, or the watchdog's
         * hung_reported, would hold a reference): set it in place. */
        ((PyFloatObject *)since)->ob_fval = *start;
        return Py_NewRef(since);
    }
    since = PyFloat_FromDouble(*start);
    if (since != NULL) {
        slot_set(worker, off_w_since, since);
    }
    return since;
}

/* _speedups_call.c: the service's side of a call, and CommandFuture's layout */
extern PyTypeObject *Future_type, *lock_type;
extern Py_ssize_t off_f_lock, off_f_state, off_f_result, off_f_exception, off_f_made,
    off_f_waiter_list, off_f_callbacks, off_f_settled, off_f_gave_up, off_f_handler, off_f_waits;
extern PyObject *lock_acquire, *lock_release, *allocate_lock;
extern PyObject *st_pending, *st_running, *st_finished, *st_cancelled, *st_notified;
extern Py_ssize_t off_w_future, off_w_runtime, off_w_scope, off_w_failed;
extern PyObject *s_bus, *s_call_started, *s_handler_returned, *s_call_ended, *s_delivery_started,
    *s_delivery_ended, *s_listener_failed, *s_finish;
int try_lock(PyObject *lock);
int unlock(PyObject *lock);
/* The observer of the bus a worker serves (runtime.bus.observer), each read
 * kept while the __dict__ it came from is unchanged: a new reference, NULL
 * on error. */
PyObject *observer_of(PyObject *worker);
/* The start of a handler's run, as run_call and run_delivery make it:
 * worker.since, .current and (for a call) .future, then the observer's
 * scope from its started hook (None when unobserved), a new reference in
 * *scope. 0, or -1 on error. */
int start_run(PyObject *worker, PyObject *handler, PyObject *future, PyObject *observer,
              PyObject *started, PyObject *ticket, double *start, PyObject **scope);

/* _speedups_exec.c: the caller's side of a call */
extern PyTypeObject ExecuteCommand_Type, FutureResult_Type;
PyObject *configure_caller(PyObject *module, PyObject *args);
PyObject *configure_calls(PyObject *module, PyObject *args);
int call_runnable(PyObject *item);
int run_call(PyObject *worker, PyObject *item, PyObject *finished, PyObject *handler,
             PyObject *stats, PyObject *fn);

/* _speedups_hooks.c: the observer's hooks of a traced call */
extern PyTypeObject CallSent_Type, CallStarted_Type, HandlerReturned_Type, CallEnded_Type;
PyObject *configure_hub(PyObject *module, PyObject *args);
typedef struct Entered Entered;
/* Hub.call_started(record, worker)'s scope (span, token) in *scope: 1 done,
 * 0 nothing done (not a CallRecord and Worker: the Python method's turn), -1
 * on error (nothing left entered). With state, the span made current
 * through the thread's entry where it may be, given in *state (or NULL). */
int call_begin(PyObject *record, PyObject *worker, Entered **state, PyObject **scope);
/* Hub.call_ended(*args) (args[0] the hub) of a traced, unwatched call that
 * returned, its span unannotated: 1 done, 0 nothing done (the Python
 * method's turn), -1 on error. */
int call_finish(PyObject *const *args);

/* What the hooks read of a hub, from its __dict__: read again only when that
 * dict changed (PEP 509 tags; every time where there are none). The values
 * are borrowed from the dict: valid while no Python code runs. */
typedef struct {
    PyObject *dict; /* NULL: nothing kept */
    uint64_t tag;
    int fast; /* traced (a sink), and no watcher */
    int own;  /* no delivery or call hook set in the hub's __dict__ */
    PyObject *submit, *limit, *redact, *names;
} HubState;
extern HubState seen_hub;
extern PyTypeObject *Hub_type;
extern PyTypeObject *Span_type; /* BusSpan, and its slots */
extern Py_ssize_t p_context, p_extras, p_live, p_span_id, p_trace_id, off_h_name, off_w_thread;
/* the API's context variable, its Context class and the current span's key */
extern PyObject *bits64, *s_name, *empty_args, *context_var, *context_type, *span_key;
/* Whether the hub records spans no watcher looks at: 1 (its state in
 * seen_hub), 0 (Python's turn), -1 on error. */
int traced_unwatched(PyObject *hub);
PyObject *time_ns(void);            /* time.time_ns() */

/* _speedups_ids.c: random ids as words, and ints made of words */
/* What configure_hub was given as random.getrandbits (its draws made in C
 * where its generator's layout is the one probed), _hub's thread local and
 * _caller. 0, or -1 on error. */
int configure_ids(PyObject *bits_fn, PyObject *tls, PyObject *caller);
PyObject *draw(PyObject *bits); /* random.getrandbits(bits) */
/* random.getrandbits(64 * n) as n words, least significant first: the same
 * words as n draws of getrandbits(64) in a row. 0, or -1 on error. */
int draw_words(int n, uint64_t *words);
PyObject *long_from_words(const uint64_t *words, int n); /* the non-negative int of n words */
PyObject *ids_in_c(PyObject *module, PyObject *unused);   /* whether draws skip getrandbits */
PyObject *caller_name(void);                              /* _hub._caller() */
/* freeze(value, limit, redact) of _records: atoms, and tuples or dicts of
 * atoms, as they are; anything else through the Python freeze. New reference. */
PyObject *freeze(PyObject *value, PyObject *limit, PyObject *redact);
/* The parent span's ids in a context: 1 found (new references), 0 none, 2
 * for Python (a replay mark, or a parent that is not a BusSpan), -1 on error. */
int parent_of(PyObject *ctx, PyObject **trace_id, PyObject **span_id);
/* A BusSpan entered as enter() does: the span, and in *token the token to
 * leave it; new references, NULL on error. */
PyObject *enter_span(PyObject *trace_id, PyObject *span_id, PyObject *extras, PyObject **token);
int own_scope(PyObject *scope, Py_ssize_t size); /* (BusSpan, token[, start_ns]) */

/* _speedups_deliver.c: the handler's span, and the observer's hooks of a traced delivery */
extern PyTypeObject DeliveryStarted_Type, DeliveryEnded_Type;
int configure_deliveries(PyObject *delivery_kind, PyObject *name_bits);
/* An event's packed head (_heads.pack_head), its fields read. */
typedef struct {
    uint64_t trace_high, trace_low, span_id, sent_ns, index;
} Head;
/* 1 and *head read when ticket is a packed head; 0 (Python's turn) else. */
int head_of(PyObject *ticket, Head *head);
/* Whether dict (a hub's __dict__) sets a delivery or call hook of its own: 1, 0, -1 on error. */
int hooks_shadowed(PyObject *dict);
/* Whether a service's loop may call the bodies of the hub's delivery hooks
 * below instead of looking its methods up: hub is a Hub whose
 * delivery_started, handler_returned and delivery_ended are the C hooks, its
 * own __dict__ sets none of them. 1, 0, -1 on error. */
int delivery_hooks_ours(PyObject *hub);
/* The same for its call_started, handler_returned and call_ended. */
int call_hooks_ours(PyObject *hub);
/* What getattr(obj, name) gave for objects whose __dict__ holds it, each
 * with that dict and its tag then: the same dict, unchanged, holds the same
 * value (borrowed from it). One cache per place that reads, with room for
 * the objects of a few services whose threads take turns. */
#define ATTRS_SEEN 4
typedef struct {
    PyObject *dict;
    uint64_t tag;
    PyObject *name; /* interned: compared by address */
    PyObject *value;
} AttrSeen;
typedef struct {
    AttrSeen seen[ATTRS_SEEN];
    int next; /* the entry to replace */
} AttrCache;
/* getattr(obj, name) (name interned), a new reference: from cache while
 * obj's __dict__ is unchanged (CPython 3.11's dict tags; read every time
 * where there are none). */
PyObject *attr_seen(PyObject *obj, PyObject *name, AttrCache *cache);
/* A worker thread's kept span, Context and context variables, for the
 * next delivery or call on that thread (_speedups_scope.c). */
/* Hub.delivery_started's scope (span, token, start_ns) for a packed head;
 * with state, the span made current through the thread's entry, which it
 * gives in *state (or NULL: none) for span_left and span_over. */
PyObject *delivery_begin(const Head *head, Entered **state);
/* Hub.handler_returned(scope) of a scope of size items (3: delivery_begin's,
 * 2: call_begin's) made with state: 1 done, 0 not such a scope (the entry
 * dropped: the Python method's turn), -1 on error. */
int span_left(PyObject *scope, Py_ssize_t size, Entered **state);
/* After the handler: the span left in C while ours_now(observer) (read
 * again) says the hooks are the hub's own: 1; 0: the entry dropped, for the
 * Python handler_returned to leave it; -1: an error is set (the span is
 * left all the same). */
int span_left_after(PyObject *observer, int direct, int (*ours_now)(PyObject *), PyObject *scope,
                    Py_ssize_t size, Entered **state);
/* Hub.handler_returned(scope): 1 done, 0 not a scope of the C hooks (the
 * Python method's turn, nothing done), -1 on error. */
int scope_left(PyObject *scope);
/* Hub.delivery_ended(*args) (args[0] the hub) for a packed head: 1 done, 0
 * nothing done (the Python method's turn), -1 on error. */
int delivery_finish(PyObject *const *args, const Head *head);

/* _speedups_scope.c: a delivery's span made current on its worker's thread */
int probe_scopes(void); /* whether the context layout is the one known (0: always) */
/* var.set(value): its token, a new reference; NULL on error, the variable
 * then as it was where the context layout is the one known. */
PyObject *var_set(PyObject *var, PyObject *value);
/* A BusSpan(trace_id, span_id) made current as enter() does, through the
 * thread's entry where it may be (*state: it, or NULL), else through the API
 * (and an entry made for next time). The span and its token: new references. */
PyObject *span_enter(PyObject *trace_id, PyObject *span_id, Entered **state, PyObject **token);
/* leave(token): the entry's variables swapped back where nothing changed
 * them, else var.reset(token) (and *state dropped, set to NULL). 0, -1. */
int span_leave(PyObject *token, Entered **state);
/* The delivery is over (its scope given, a reference taken): the entry
 * kept for the next where no one else holds what it keeps, else dropped. */
void span_over(Entered *state, PyObject *scope);
/* The entry's last scope, to serve again (a delivery's with a new
 * start_ns; its reference given), where it has size items and no one else
 * holds it; else NULL (and the entry keeps none). */
PyObject *span_scope(Entered *state, Py_ssize_t size);
void span_drop(Entered *state); /* the entry dropped (NULL: nothing) */

/* _speedups_fired.c: the firing side of a traced event */
PyObject *configure_fired(PyObject *module, PyObject *args);
/* Hub.event_fired, delivery_queued and event_posted of a traced, unwatched
 * event, and its deliveries: 1 done, 0 nothing done (the Python hooks'
 * turn), -1 on error. */
int fire_traced(PyObject *bus, PyObject *hub, PyObject *name, PyObject *args, PyObject *kwargs,
                PyObject *listeners);

/* _speedups_sink.c: the trace sink's submit */
extern PyTypeObject SinkSubmit_Type;
PyObject *configure_sink(PyObject *module, PyObject *args);
/* submit(record), where submit is a hub's _submit: a SinkSubmit bound to
 * its sink is run without a bound call between. 0, or -1 on error. */
int submit_record(PyObject *submit, PyObject *record);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
