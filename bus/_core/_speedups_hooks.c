/* Commands: the bus observer's hooks of a traced call (see _speedups.c).
 *
 * bus._observe._hub.Hub's call_sent, call_started, handler_returned and
 * call_ended as method descriptors around the Python methods, for the
 * common case of a traced call no watcher looks at: the CallRecord, its
 * ids and frozen arguments (call_sent); the handler's BusSpan made current
 * in a context of its own (call_started) and that context left
 * (handler_returned, in _speedups_deliver.c with the deliveries' hooks); the
 * flat CALL tuple handed to the trace sink (call_ended). They do what the Python methods do, in the same order
 * (the same random draws, the same clock reads), and call the Python method
 * before doing anything whenever something is unusual: watchers, no sink,
 * a parent span that is not a BusSpan or a replay mark in the context,
 * annotations on the handler's span, an error. Values that are not atoms
 * are frozen by the Python freeze().
 *
 * Whether a watcher looks is read as a hook starts: one that a redaction
 * hook adds while the hook runs sees the next piece of work.
 *
 * Python calls these through the same attribute lookups (observer.call_sent
 * and so on) as the C paths do, so neither pays a Python frame for them.
 * configure_hub() is given the classes and the context variable; the hub
 * installs the wrappers only when _ctx sets the context variable directly.
 */
#include "_speedups.h"

#include <time.h>

PyTypeObject *Span_type;
Py_ssize_t p_context, p_extras, p_live, p_span_id, p_trace_id, off_h_name, off_w_thread;
PyObject *bits64, *s_name, *empty_args, *context_var, *context_type, *span_key;
HubState seen_hub;
PyTypeObject *Hub_type;
static PyTypeObject *Record_type;
static PyObject *replay_key, *freeze_fn, *random_bits, *caller_tls, *caller_fn;
static PyObject *call_kind;
static PyObject *s_sink, *s_watchers, *s_submit, *s_json_limit, *s_redact, *s_names;
/* CallRecord's slots */
static Py_ssize_t r_args, r_caller, r_client_id, r_extras, r_handled_ns, r_hop, r_kwargs, r_name,
    r_parent_id, r_sent_ns, r_server_id, r_service, r_thread, r_trace_id, r_wire;

/* time.time_ns(): CPython reads CLOCK_REALTIME with clock_gettime too. */
PyObject *
time_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

/* type(value) in ATOMIC_TYPES (configure_hub checks that set is these five). */
static inline int
atomic(PyObject *value)
{
    return value == Py_None || PyUnicode_CheckExact(value) || PyLong_CheckExact(value) ||
           PyFloat_CheckExact(value) || PyBool_Check(value);
}



int
traced_unwatched(PyObject *hub)
{
    if (!Py_IS_TYPE(hub, Hub_type)) {
        return 0; /* a subclass may keep these elsewhere */
    }
    /* The hub's __dict__ where it lies (made, once, from its inline values:
     * then the same dict every time); else as getattr would make it. */
    PyObject **where = _PyObject_GetDictPtr(hub);
    PyObject *dict = where == NULL || *where == NULL ? PyObject_GenericGetDict(hub, NULL)
                                                    : Py_NewRef(*where);
    if (dict == NULL) {
        return -1;
    }
    uint64_t tag = DICT_TAG(dict);
    if (tag == TAG_UNKNOWN || dict != seen_hub.dict || tag != seen_hub.tag) {
        seen_hub.dict = NULL;
        PyObject *sink = PyDict_GetItemWithError(dict, s_sink);
        PyObject *watchers = sink == NULL ? NULL : PyDict_GetItemWithError(dict, s_watchers);
        PyObject *submit = watchers == NULL ? NULL : PyDict_GetItemWithError(dict, s_submit);
        PyObject *limit = submit == NULL ? NULL : PyDict_GetItemWithError(dict, s_json_limit);
        PyObject *redact = limit == NULL ? NULL : PyDict_GetItemWithError(dict, s_redact);
        PyObject *names = redact == NULL ? NULL : PyDict_GetItemWithError(dict, s_names);
        if (names == NULL && PyErr_Occurred()) {
            Py_DECREF(dict);
            return -1;
        }
        seen_hub.fast = names != NULL && PyList_CheckExact(names) && sink != Py_None &&
                        PyTuple_CheckExact(watchers) && PyTuple_GET_SIZE(watchers) == 0;
        /* No delivery or call hook set on the hub itself (a test's stand-in, say). */
        int shadowed = hooks_shadowed(dict);
        if (shadowed < 0) {
            Py_DECREF(dict);
            return -1;
        }
        seen_hub.own = !shadowed;
        seen_hub.submit = submit;
        seen_hub.limit = limit;
        seen_hub.redact = redact;
        seen_hub.names = names;
        seen_hub.tag = tag;
        seen_hub.dict = tag == TAG_UNKNOWN ? NULL : dict;
    }
    Py_DECREF(dict); /* the hub holds it */
    return seen_hub.fast;
}

/* freeze(value, limit, redact): an atom, or a tuple or dict of atoms, as it
 * is; anything else through the Python freeze. New reference. */
PyObject *
freeze(PyObject *value, PyObject *limit, PyObject *redact)
{
    if (atomic(value)) {
        return Py_NewRef(value);
    }
    int plain = 0;
    if (PyTuple_CheckExact(value)) {
        plain = 1;
        for (Py_ssize_t i = 0; plain && i < PyTuple_GET_SIZE(value); i++) {
            plain = atomic(PyTuple_GET_ITEM(value, i));
        }
    }
    else if (PyDict_CheckExact(value)) {
        PyObject *key, *item;
        Py_ssize_t pos = 0;
        plain = 1;
        while (plain && PyDict_Next(value, &pos, &key, &item)) {
            plain = atomic(item);
        }
    }
    if (plain) {
        return Py_NewRef(value);
    }
    PyObject *args[3] = {value, limit, redact};
    return PyObject_Vectorcall(freeze_fn, args, 3, NULL);
}

/* -- call_sent --------------------------------------------------------------------- */

/* The parent span's ids in the current context, as _ctx.parent_ids and
 * Hub._call_record read them: 1 found (new references), 0 none, 2 for
 * Python (a replay mark, or a parent that is not a BusSpan), -1 on error. */
int
parent_of(PyObject *ctx, PyObject **trace_id, PyObject **span_id)
{
    if (!PyDict_Check(ctx) || PyDict_GET_SIZE(ctx) == 0) {
        return PyDict_Check(ctx) ? 0 : 2;
    }
    int marked = PyDict_Contains(ctx, replay_key);
    if (marked != 0) {
        return marked < 0 ? -1 : 2;
    }
    PyObject *span = PyDict_GetItemWithError(ctx, span_key);
    if (span == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (span == Py_None) {
        return 0;
    }
    if (!Py_IS_TYPE(span, Span_type) || SLOT(span, p_trace_id) == NULL ||
        SLOT(span, p_span_id) == NULL) {
        return 2;
    }
    *trace_id = Py_NewRef(SLOT(span, p_trace_id));
    *span_id = Py_NewRef(SLOT(span, p_span_id));
    return 1;
}

static PyObject *
call_sent(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 4 || kwnames != NULL || Record_type == NULL ||
        !Py_IS_TYPE(args[1], Handler_type) || !PyTuple_CheckExact(args[2]) ||
        !PyDict_CheckExact(args[3])) {
        goto slow;
    }
    PyObject *hub = args[0], *handler = args[1];
    int fast = traced_unwatched(hub);
    if (fast <= 0) {
        if (fast < 0) {
            return NULL;
        }
        goto slow;
    }
    PyObject *ctx = NULL, *trace_id = NULL, *parent_id = NULL;
    if (PyContextVar_Get(context_var, NULL, &ctx) < 0) {
        return NULL;
    }
    int found = ctx == NULL ? 0 : parent_of(ctx, &trace_id, &parent_id);
    Py_XDECREF(ctx);
    if (found < 0 || found == 2) {
        if (found < 0) {
            return NULL;
        }
        goto slow;
    }
    PyObject *runtime = SLOT(handler, off_h_destination);
    PyObject *name = SLOT(handler, off_h_name);
    PyObject *record = NULL, *value = NULL;
    /* Held: Python code may run from here on (a redaction hook) and change the hub. */
    PyObject *limit = Py_NewRef(seen_hub.limit), *redact = Py_NewRef(seen_hub.redact);
    if (runtime == NULL || name == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a handler without its name or destination");
        goto failed;
    }
    /* From here on, as _call_record: the ids drawn in the same order. */
    if ((record = Record_type->tp_new(Record_type, empty_args, NULL)) == NULL) {
        goto failed;
    }
    slot_set(record, r_extras, Py_None);
    /* getrandbits(128) for a new trace, then (64) twice, drawn at once: each
     * takes the generator's next words, so this is the same draw, in order. */
    uint64_t ids[4]; /* a new trace id's two words, the client's and the server's span ids */
    if (draw_words(found == 0 ? 4 : 2, found == 0 ? ids : ids + 2) < 0 ||
        (found == 0 && ((trace_id = long_from_words(ids, 2)) == NULL ||
                        (parent_id = PyLong_FromLong(0)) == NULL))) {
        goto failed;
    }
    slot_set(record, r_trace_id, trace_id);
    slot_set(record, r_parent_id, parent_id);
#define SET(slot, expression)                                                                  \
    if ((value = (expression)) == NULL) {                                                      \
        goto failed;                                                                           \
    }                                                                                          \
    slot_set(record, slot, value);                                                             \
    Py_CLEAR(value);
    SET(r_client_id, PyLong_FromUnsignedLongLong(ids[2]));
    SET(r_server_id, PyLong_FromUnsignedLongLong(ids[3]));
    slot_set(record, r_name, name);
    SET(r_caller, caller_name());
    SET(r_service, PyObject_GetAttr(runtime, s_name));
    SET(r_args, freeze(args[2], limit, redact));
    SET(r_kwargs, PyDict_GET_SIZE(args[3]) ? freeze(args[3], limit, redact) : Py_NewRef(Py_None));
    slot_set(record, r_hop, Py_None);
    slot_set(record, r_wire, Py_None);
    SET(r_sent_ns, time_ns());
#undef SET
    Py_XDECREF(trace_id);
    Py_XDECREF(parent_id);
    Py_DECREF(limit);
    Py_DECREF(redact);
    return record;
failed:
    Py_XDECREF(trace_id);
    Py_XDECREF(parent_id);
    Py_XDECREF(record);
    Py_DECREF(limit);
    Py_DECREF(redact);
    return NULL;
slow:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

/* -- call_started ------------------------------------------------------------------- */

int
call_begin(PyObject *record, PyObject *worker, Entered **state, PyObject **scope)
{
    *scope = NULL;
    if (Record_type == NULL || !Py_IS_TYPE(record, Record_type) ||
        !Py_IS_TYPE(worker, Worker_type)) {
        return 0;
    }
    PyObject *trace_id = SLOT(record, r_trace_id), *span_id = SLOT(record, r_server_id);
    PyObject *extras = SLOT(record, r_extras), *thread = SLOT(worker, off_w_thread);
    if (trace_id == NULL || span_id == NULL || extras == NULL || thread == NULL) {
        return 0;
    }
    PyObject *now = time_ns();
    if (now == NULL) {
        return -1;
    }
    slot_set(record, r_handled_ns, now);
    Py_DECREF(now);
    slot_set(record, r_thread, thread);
    /* BusSpan(record.trace_id, record.server_id, record.extras), entered:
     * through the thread's kept entry where there are no extras to copy. */
    Entered *kept = NULL;
    PyObject *token = NULL;
    PyObject *span = state != NULL && extras == Py_None
                         ? span_enter(trace_id, span_id, &kept, &token)
                         : enter_span(trace_id, span_id, extras, &token);
    if (span == NULL) {
        return -1;
    }
    PyObject *made = kept != NULL ? span_scope(kept, 2) : NULL;
    *scope = made != NULL ? made : PyTuple_Pack(2, span, token);
    if (*scope == NULL) {
        /* Left as it was entered: no one will have the token to leave it. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (span_leave(token, &kept) < 0) {
            PyErr_WriteUnraisable(context_var);
        }
        span_drop(kept);
        kept = NULL;
        PyErr_Restore(type, value, traceback);
    }
    if (state != NULL) {
        *state = kept;
    }
    Py_DECREF(span);
    Py_DECREF(token);
    return *scope == NULL ? -1 : 1;
}

static PyObject *
call_started(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *scope;
    int begun = PyVectorcall_NARGS(nargsf) != 3 || kwnames != NULL
                    ? 0
                    : call_begin(args[1], args[2], NULL, &scope);
    if (begun == 0) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    return begun < 0 ? NULL : scope;
}

/* -- call_ended --------------------------------------------------------------------- */

int
call_finish(PyObject *const *args)
{
    /* (hub, ticket, scope, handler, worker, error, elapsed, result) */
    if (Record_type == NULL ||
        !Py_IS_TYPE(args[1], Record_type) || args[5] != Py_None || !own_scope(args[2], 2) ||
        SLOT(PyTuple_GET_ITEM(args[2], 0), p_extras) != Py_None) {
        goto slow; /* an error, or a span the handler annotated (a live stub, say) */
    }
    PyObject *hub = args[0], *record = args[1];
    int fast = traced_unwatched(hub);
    if (fast <= 0) {
        return fast;
    }
    static const Py_ssize_t *order[] = {&r_trace_id, &r_parent_id, &r_client_id, &r_server_id,
                                        &r_name,     &r_caller,    &r_service,   &r_args,
                                        &r_kwargs,   &r_sent_ns,   &r_handled_ns};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (SLOT(record, *order[i]) == NULL) {
            goto slow; /* Python raises the AttributeError */
        }
    }
    if (SLOT(record, r_thread) == NULL || SLOT(record, r_hop) == NULL ||
        SLOT(record, r_wire) == NULL) {
        goto slow;
    }
    /* record.extras = scope[0].extras(): None, as checked above */
    slot_set(record, r_extras, Py_None);
    /* Held: freeze may run Python code (a redaction hook), which may change the hub. */
    PyObject *submit = Py_NewRef(seen_hub.submit);
    PyObject *limit = Py_NewRef(seen_hub.limit), *redact = Py_NewRef(seen_hub.redact);
    PyObject *frozen = freeze(args[7], limit, redact);
    Py_DECREF(limit);
    Py_DECREF(redact);
    /* Read after freeze, which may have run Python code. */
    PyObject *thread = SLOT(record, r_thread), *hop = SLOT(record, r_hop);
    PyObject *wire = SLOT(record, r_wire);
    int whole = thread != NULL && hop != NULL && wire != NULL;
    for (size_t i = 0; whole && i < sizeof(order) / sizeof(order[0]); i++) {
        whole = SLOT(record, *order[i]) != NULL;
    }
    if (frozen != NULL && !whole) {
        PyErr_SetString(PyExc_AttributeError, "a call record lost a field as it ended");
        Py_CLEAR(frozen);
    }
    PyObject *end = frozen == NULL ? NULL : time_ns();
    PyObject *flat = end == NULL ? NULL : PyTuple_New(21);
    if (flat == NULL) {
        Py_DECREF(submit);
        Py_XDECREF(frozen);
        Py_XDECREF(end);
        return -1;
    }
    /* record.flat(end_ns, frozen, None, None, None): the CALL layout of _records */
    PyTuple_SET_ITEM(flat, 0, Py_NewRef(call_kind));
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        PyTuple_SET_ITEM(flat, 1 + i, Py_NewRef(SLOT(record, *order[i])));
    }
    PyTuple_SET_ITEM(flat, 12, end);
    PyTuple_SET_ITEM(flat, 13, Py_NewRef(thread));
    PyTuple_SET_ITEM(flat, 14, frozen);
    PyTuple_SET_ITEM(flat, 15, Py_NewRef(Py_None));
    PyTuple_SET_ITEM(flat, 16, Py_NewRef(Py_None));
    PyTuple_SET_ITEM(flat, 17, Py_NewRef(Py_None));
    PyTuple_SET_ITEM(flat, 18, Py_NewRef(Py_None));
    PyTuple_SET_ITEM(flat, 19, Py_NewRef(hop));
    PyTuple_SET_ITEM(flat, 20, Py_NewRef(wire));
    /* A flat record of atoms and frozen values is in no cycle: the collector
     * need not look at it while it waits, nor in the ring. */
    PyObject_GC_UnTrack(flat);
    int rc = submit_record(submit, flat);
    Py_DECREF(submit);
    Py_DECREF(flat);
    return rc < 0 ? -1 : 1;
slow:
    return 0;
}

static PyObject *
call_ended(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    int done = PyVectorcall_NARGS(nargsf) != 8 || kwnames != NULL ? 0 : call_finish(args);
    if (done == 0) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    if (done < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -- the types, and configure_hub() ----------------------------------------------------- */

#define HOOK_TYPE(Name, fn, doc)                                                               \
    static PyObject *Name##_new(PyTypeObject *type, PyObject *args, PyObject *kwds)          \
    {                                                                                          \
        return wrapper_new(type, args, kwds, (vectorcallfunc)fn);                              \
    }                                                                                          \
    PyTypeObject Name##_Type = WRAPPER_TYPE(#Name, doc, Name##_new);

HOOK_TYPE(CallSent, call_sent, "Hub.call_sent with its traced, unwatched record made in C.")
HOOK_TYPE(CallStarted, call_started, "Hub.call_started with the handler's span entered in C.")
HOOK_TYPE(CallEnded, call_ended, "Hub.call_ended with its flat record made in C.")

PyObject *
configure_hub(PyObject *module, PyObject *args)
{
    PyObject *hub, *record, *span, *atomic_types, *constants, *delivery, *name_bits;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOOO:configure_hub", &hub, &record, &span, &call_kind,
                          &delivery, &name_bits,
                          &context_var, &context_type, &span_key, &replay_key, &freeze_fn,
                          &atomic_types, &random_bits, &caller_tls, &caller_fn)) {
        return NULL;
    }
    if (Record_type != NULL || Worker_type == NULL || Handler_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_hub: once, after configure()");
        return NULL;
    }
    if (!PyType_Check(hub) || !PyType_Check(record) || !PyType_Check(span) ||
        !PyType_Check(context_type) ||
        !PyType_IsSubtype((PyTypeObject *)context_type, &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError,
                        "configure_hub: the hub, record, span and context (a dict) must be classes");
        return NULL;
    }
    /* atomic() tests these five types: the Python code's set must be them. */
    PyObject *five = Py_BuildValue("(OOOOO)", &PyUnicode_Type, &PyLong_Type, &PyFloat_Type,
                                   &PyBool_Type, Py_TYPE(Py_None));
    constants = five == NULL ? NULL : PyFrozenSet_New(five);
    Py_XDECREF(five);
    if (constants == NULL) {
        return NULL;
    }
    int same = PyObject_RichCompareBool(atomic_types, constants, Py_EQ);
    Py_DECREF(constants);
    if (same <= 0) {
        if (same == 0) {
            PyErr_SetString(PyExc_ValueError, "configure_hub: ATOMIC_TYPES is not the five atoms");
        }
        return NULL;
    }
    PyTypeObject *r = (PyTypeObject *)record, *s = (PyTypeObject *)span;
    if (slot_offset(r, "args", &r_args) || slot_offset(r, "caller", &r_caller) ||
        slot_offset(r, "client_id", &r_client_id) || slot_offset(r, "extras", &r_extras) ||
        slot_offset(r, "handled_ns", &r_handled_ns) || slot_offset(r, "hop", &r_hop) ||
        slot_offset(r, "kwargs", &r_kwargs) || slot_offset(r, "name", &r_name) ||
        slot_offset(r, "parent_id", &r_parent_id) || slot_offset(r, "sent_ns", &r_sent_ns) ||
        slot_offset(r, "server_id", &r_server_id) || slot_offset(r, "service", &r_service) ||
        slot_offset(r, "thread", &r_thread) || slot_offset(r, "trace_id", &r_trace_id) ||
        slot_offset(r, "wire", &r_wire) || slot_offset(s, "_context", &p_context) ||
        slot_offset(s, "_extras", &p_extras) || slot_offset(s, "_live", &p_live) ||
        slot_offset(s, "span_id", &p_span_id) || slot_offset(s, "trace_id", &p_trace_id) ||
        slot_offset(Handler_type, "name", &off_h_name) ||
        slot_offset(Worker_type, "thread_name", &off_w_thread)) {
        return NULL;
    }
    if ((s_sink = PyUnicode_InternFromString("sink")) == NULL ||
        (s_watchers = PyUnicode_InternFromString("watchers")) == NULL ||
        (s_submit = PyUnicode_InternFromString("_submit")) == NULL ||
        (s_json_limit = PyUnicode_InternFromString("json_limit")) == NULL ||
        (s_redact = PyUnicode_InternFromString("redact")) == NULL ||
        (s_name = PyUnicode_InternFromString("name")) == NULL ||
        (s_names = PyUnicode_InternFromString("_names")) == NULL ||
        (bits64 = PyLong_FromLong(64)) == NULL ||
        (empty_args = PyTuple_New(0)) == NULL || configure_deliveries(delivery, name_bits) < 0 ||
        configure_ids(random_bits, caller_tls, caller_fn) < 0) {
        return NULL;
    }
    PyObject *kept[] = {call_kind, context_var, context_type, span_key,  replay_key,
                        freeze_fn, random_bits, caller_tls,   caller_fn};
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        Py_INCREF(kept[i]);
    }
    Hub_type = (PyTypeObject *)Py_NewRef(hub);
    Span_type = (PyTypeObject *)Py_NewRef(span);
    Record_type = (PyTypeObject *)Py_NewRef(record);
    Py_RETURN_NONE;
}
