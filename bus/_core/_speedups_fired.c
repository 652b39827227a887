/* Events: the firing side of a traced event, and the trace sink's submit (see _speedups.c).
 *
 * fire_traced() is what bus._observe._hub.Hub's event_fired, delivery_queued
 * (per listener) and event_posted do for a traced event no watcher and no
 * tap sees, done by fire_event's C path (_speedups_fire.c) in one go, with
 * no Python frame and no list between them: the ids, the arguments frozen
 * (atoms, and tuples or dicts of atoms, as they are; anything else through
 * the Python freeze), the event's packed head (_heads: 128 + 64 + 64 + 32
 * bits, made from bytes), the deliveries posted with it as their ticket,
 * and the flat FIRE tuple of _records handed to the trace sink. It draws
 * the ids as the Python code does: one getrandbits(192) for a new trace
 * (its trace id the top 128 bits, the event's span id the low 64, drawn
 * again while either is 0), one getrandbits(64) under a parent span.
 *
 * It returns 0, having done nothing, whenever something is unusual, and the
 * caller then asks the Python methods: a hub that is not exactly Hub or
 * whose event hooks are not its own, no sink, watchers or taps, a replay
 * mark or a parent span that is not a BusSpan in the context (or a trace id
 * wider than 128 bits), an event name the hub's table has no room for.
 * Whether a watcher looks is read as the event starts (as call_sent does).
 *
 * TraceSink.submit becomes SinkSubmit: the same room check, append and early
 * wake of the trace thread as the Python method, which takes a record that
 * finds the buffer full (it waits, or drops and counts, under its lock).
 */
#include "_speedups.h"

#include <time.h>

static PyTypeObject *fired_hub, *sink_type, *deque_type;
static PyObject *fire_kind, *py_event_fired, *py_delivery_queued, *py_event_posted;
static PyObject *k_sink, *k_watchers, *k_taps, *k_submit, *k_limit, *k_redact, *k_name_index,
    *k_add_name, *k_buffer, *k_room, *k_batch_wake, *k_wake, *k_set, *bits192, *shift64;

/* What fire_traced reads of a hub's __dict__, read again only when it
 * changed (PEP 509 tags; every time where there are none). Borrowed: valid
 * while no Python code runs. */
static struct {
    PyObject *dict; /* NULL: nothing kept */
    uint64_t tag;
    int fast; /* a sink, no watcher, no tap */
    PyObject *submit, *limit, *redact, *name_index;
} seen;

/* A non-negative int below 2**128 as its low and high 64 bits: 0, 1 when
 * it is not such an int (the Python code's turn), -1 on another error. */
static int
split128(PyObject *value, uint64_t words[2])
{
    if (!PyLong_CheckExact(value)) {
        return 1;
    }
    PyObject *high = PyNumber_Rshift(value, shift64);
    if (high == NULL) {
        return -1;
    }
    unsigned long long hi = PyLong_AsUnsignedLongLong(high);
    Py_DECREF(high);
    if (hi == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear(); /* negative, or wider than 128 bits */
        return 1;
    }
    words[0] = PyLong_AsUnsignedLongLongMask(value);
    words[1] = hi;
    return 0;
}

/* The unsigned int of n little-endian bytes. */
static PyObject *
long_from(const unsigned char *bytes, size_t n)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(bytes, (Py_ssize_t)n, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    return _PyLong_FromByteArray(bytes, n, 1, 0);
#endif
}

static void
put64(unsigned char *at, uint64_t value)
{
    for (int i = 0; i < 8; i++) {
        at[i] = (unsigned char)(value >> (8 * i));
    }
}

/* Whether the hub records events that no watcher or tap sees: 1 (its state
 * in seen), 0 (Python's turn), -1 on error. */
static int
unwatched(PyObject *hub)
{
    if (!Py_IS_TYPE(hub, fired_hub) ||
        _PyType_Lookup(fired_hub, s_event_fired) != py_event_fired ||
        _PyType_Lookup(fired_hub, s_delivery_queued) != py_delivery_queued ||
        _PyType_Lookup(fired_hub, s_event_posted) != py_event_posted) {
        return 0; /* a subclass, or a hook replaced (a test's spy): theirs to run */
    }
    PyObject *dict = PyObject_GenericGetDict(hub, NULL);
    if (dict == NULL) {
        return -1;
    }
    uint64_t tag = DICT_TAG(dict);
    if (tag == TAG_UNKNOWN || dict != seen.dict || tag != seen.tag) {
        seen.dict = NULL;
        PyObject *keys[] = {k_sink, k_watchers, k_taps, k_submit, k_limit, k_redact, k_name_index};
        PyObject *values[7];
        for (size_t i = 0; i < 7; i++) {
            values[i] = PyDict_GetItemWithError(dict, keys[i]);
            if (values[i] == NULL) {
                Py_DECREF(dict);
                return PyErr_Occurred() ? -1 : 0;
            }
        }
        seen.fast = values[0] != Py_None && PyTuple_CheckExact(values[1]) &&
                    PyTuple_GET_SIZE(values[1]) == 0 && PyTuple_CheckExact(values[2]) &&
                    PyTuple_GET_SIZE(values[2]) == 0 && PyDict_CheckExact(values[6]);
        seen.submit = values[3];
        seen.limit = values[4];
        seen.redact = values[5];
        seen.name_index = values[6];
        seen.tag = tag;
        seen.dict = tag == TAG_UNKNOWN ? NULL : dict;
    }
    Py_DECREF(dict); /* the hub holds it */
    return seen.fast;
}

/* The index of the event's name in the hub's table, as Hub.event_fired
 * finds it (adding it when new): 1 (in *index), 0 when the table is full
 * (Python's turn), -1 on error. */
static int
name_index(PyObject *hub, PyObject *names, PyObject *name, uint32_t *index)
{
    PyObject *found = PyDict_GetItemWithError(names, name);
    if (found != NULL) {
        Py_INCREF(found);
    }
    else if (PyErr_Occurred() ||
             (found = PyObject_CallMethodOneArg(hub, k_add_name, name)) == NULL) {
        return -1;
    }
    int rc = 0;
    if (PyLong_CheckExact(found)) {
        unsigned long value = PyLong_AsUnsignedLong(found);
        if (value == (unsigned long)-1 && PyErr_Occurred()) {
            PyErr_Clear(); /* not an index a head can hold: Python's turn */
        }
        else if (value <= 0xFFFFFFFFUL) {
            *index = (uint32_t)value;
            rc = 1;
        }
    }
    Py_DECREF(found);
    return rc;
}

/* The event's trace id and span id, drawn as Hub.event_fired draws them
 * (_heads.event_ids: never 0); under a parent only the span id. Their
 * words in ids: the span id, then the trace id's low and high 64 bits.
 * 0, or -1 on error. */
static int
draw_ids(int parented, PyObject **trace_id, PyObject **span_id, uint64_t ids[3])
{
    for (;;) {
        PyObject *drawn = draw(parented ? bits64 : bits192), *trace = NULL;
        if (drawn == NULL) {
            return -1;
        }
        int rc = PyLong_CheckExact(drawn) ? 0 : 1;
        if (rc == 0) {
            ids[0] = PyLong_AsUnsignedLongLongMask(drawn); /* the low 64 bits */
            if (!parented) {
                trace = PyNumber_Rshift(drawn, shift64);
                rc = trace == NULL ? -1 : split128(trace, ids + 1);
            }
        }
        if (rc != 0) {
            if (rc > 0) {
                PyErr_SetString(PyExc_TypeError, "random.getrandbits gave no int of the bits asked");
            }
            Py_DECREF(drawn);
            Py_XDECREF(trace);
            return -1;
        }
        if (ids[0] == 0 || (!parented && ids[1] == 0 && ids[2] == 0)) {
            Py_DECREF(drawn);
            Py_XDECREF(trace);
            continue; /* 0 is no id: drawn again, as in Python */
        }
        if (parented) {
            *span_id = drawn;
            return 0;
        }
        Py_DECREF(drawn);
        *trace_id = trace;
        *span_id = PyLong_FromUnsignedLongLong(ids[0]);
        return *span_id == NULL ? -1 : 0;
    }
}

int
fire_traced(PyObject *bus, PyObject *hub, PyObject *name, PyObject *args, PyObject *kwargs,
            PyObject *listeners)
{
    if (fired_hub == NULL) {
        return 0;
    }
    int fast = unwatched(hub);
    if (fast <= 0) {
        return fast;
    }
    PyObject *ctx = NULL, *trace_id = NULL, *parent_id = NULL;
    if (PyContextVar_Get(context_var, NULL, &ctx) < 0) {
        return -1;
    }
    int found = ctx == NULL ? 0 : parent_of(ctx, &trace_id, &parent_id);
    Py_XDECREF(ctx);
    if (found < 0 || found == 2) {
        return found < 0 ? -1 : 0;
    }
    /* The head, little-endian: the name's index (32 bits), the send time,
     * the event's span id and its trace id (NAME_BITS is 32: see configure_fired). */
    unsigned char head_bytes[36];
    uint64_t ids[3]; /* the span id, the trace id's low and high words */
    int rc = found == 1 ? split128(trace_id, ids + 1) : 0;
    if (rc != 0) { /* wider than a head holds: Python's turn (or an error) */
        Py_DECREF(trace_id);
        Py_DECREF(parent_id);
        return rc < 0 ? -1 : 0;
    }
    /* Held: Python code may run from here on (adding a name, a redaction
     * hook, a pool growing) and change the hub. */
    PyObject *submit = Py_NewRef(seen.submit), *limit = Py_NewRef(seen.limit);
    PyObject *redact = Py_NewRef(seen.redact), *names = Py_NewRef(seen.name_index);
    PyObject *span_id = NULL, *frozen = NULL, *frozen_kw = NULL, *sent = NULL, *head = NULL;
    PyObject *end = NULL, *caller = NULL, *count = NULL, *flat = NULL;
    uint32_t index = 0;
    rc = name_index(hub, names, name, &index);
    if (rc <= 0) {
        goto done; /* a full table (0: Python's turn), or an error */
    }
    rc = -1;
    if (found == 0 && (parent_id = PyLong_FromLong(0)) == NULL) {
        goto done;
    }
    if (draw_ids(found == 1, &trace_id, &span_id, ids) < 0 ||
        (frozen = freeze(args, limit, redact)) == NULL ||
        (frozen_kw = PyDict_GET_SIZE(kwargs) ? freeze(kwargs, limit, redact)
                                             : Py_NewRef(Py_None)) == NULL) {
        goto done;
    }
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    uint64_t sent_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    for (int i = 0; i < 4; i++) {
        head_bytes[i] = (unsigned char)(index >> (8 * i));
    }
    put64(head_bytes + 4, sent_ns);
    put64(head_bytes + 12, ids[0]);
    put64(head_bytes + 20, ids[1]);
    put64(head_bytes + 28, ids[2]);
    if ((sent = PyLong_FromUnsignedLongLong(sent_ns)) == NULL ||
        (head = long_from(head_bytes, sizeof(head_bytes))) == NULL) {
        goto done;
    }
    /* delivery_queued: every delivery's ticket is the head */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(listeners); i++) {
        if (deliver(bus, PyTuple_GET_ITEM(listeners, i), args, kwargs, name, hub, head) < 0) {
            goto done; /* as in Python: the error goes up, and no FIRE record */
        }
    }
    /* event_posted: the FIRE layout of _records */
    if ((end = time_ns()) == NULL || (caller = caller_name()) == NULL ||
        (count = PyLong_FromSsize_t(PyTuple_GET_SIZE(listeners))) == NULL ||
        (flat = PyTuple_New(13)) == NULL) {
        goto done;
    }
    PyObject *items[] = {fire_kind, trace_id, parent_id, span_id, name,    caller, frozen,
                         frozen_kw, sent,     end,      count,   Py_None, Py_None};
    for (Py_ssize_t i = 0; i < 13; i++) {
        PyTuple_SET_ITEM(flat, i, Py_NewRef(items[i]));
    }
    /* Atoms and frozen values: in no cycle, so the collector need not look
     * at it while it waits, nor in the ring. */
    PyObject_GC_UnTrack(flat);
    rc = call_discard(submit, &flat, 1) < 0 ? -1 : 1;
done:
    Py_XDECREF(trace_id);
    Py_XDECREF(parent_id);
    Py_XDECREF(span_id);
    Py_XDECREF(frozen);
    Py_XDECREF(frozen_kw);
    Py_XDECREF(sent);
    Py_XDECREF(head);
    Py_XDECREF(end);
    Py_XDECREF(caller);
    Py_XDECREF(count);
    Py_XDECREF(flat);
    Py_DECREF(submit);
    Py_DECREF(limit);
    Py_DECREF(redact);
    Py_DECREF(names);
    return rc;
}

/* -- TraceSink.submit ----------------------------------------------------------------- */

/* The sink's int attribute key, from its __dict__ or (BATCH_WAKE) its class:
 * 1 (in *value), 0 when it is not a plain int there. */
static int
sink_int(PyObject *dict, PyObject *key, Py_ssize_t *value)
{
    PyObject *found = PyDict_GetItemWithError(dict, key);
    if (found == NULL && !PyErr_Occurred() && key == k_batch_wake) {
        found = _PyType_Lookup(sink_type, key);
    }
    if (found == NULL || !PyLong_CheckExact(found)) {
        PyErr_Clear();
        return 0;
    }
    *value = PyLong_AsSsize_t(found);
    if (*value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static PyObject *
sink_submit(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL || sink_type == NULL ||
        !Py_IS_TYPE(args[0], sink_type)) {
        goto slow;
    }
    PyObject *dict = PyObject_GenericGetDict(args[0], NULL);
    if (dict == NULL) {
        return NULL;
    }
    PyObject *buffer = PyDict_GetItemWithError(dict, k_buffer);
    Py_ssize_t room, wake_at;
    if (buffer == NULL || !Py_IS_TYPE(buffer, deque_type) || !sink_int(dict, k_room, &room) ||
        !sink_int(dict, k_batch_wake, &wake_at)) {
        Py_DECREF(dict);
        if (PyErr_Occurred()) {
            return NULL;
        }
        goto slow;
    }
    Py_ssize_t held = PyObject_Size(buffer);
    if (held < 0 || held >= room) {
        Py_DECREF(dict);
        if (held < 0) {
            return NULL;
        }
        goto slow; /* full: the Python method waits, or drops and counts */
    }
    Py_INCREF(buffer);
    PyObject *append[2] = {buffer, args[1]};
    int rc = call_discard(deque_append, append, 2);
    Py_DECREF(buffer);
    if (rc == 0 && held == wake_at) { /* a batch is waiting: wake the trace thread early */
        PyObject *wake = PyDict_GetItemWithError(dict, k_wake);
        PyObject *done = wake == NULL ? NULL : PyObject_CallMethodNoArgs(wake, k_set);
        if (done == NULL && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_AttributeError, "a trace sink without its _wake event");
        }
        rc = done == NULL ? -1 : 0;
        Py_XDECREF(done);
    }
    Py_DECREF(dict);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
slow:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
sink_submit_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)sink_submit);
}

PyTypeObject SinkSubmit_Type = WRAPPER_TYPE(
    "SinkSubmit", "TraceSink.submit with its append in C; the Python method takes a full buffer.",
    sink_submit_new);

/* -- configure_fired() ---------------------------------------------------------------- */

static int
intern_all(void)
{
    struct {
        PyObject **name;
        const char *text;
    } names[] = {{&k_sink, "sink"},          {&k_watchers, "watchers"},
                 {&k_taps, "taps"},          {&k_submit, "_submit"},
                 {&k_limit, "json_limit"},   {&k_redact, "redact"},
                 {&k_name_index, "_name_index"}, {&k_add_name, "add_name"},
                 {&k_buffer, "_buffer"},     {&k_room, "_room"},
                 {&k_batch_wake, "BATCH_WAKE"}, {&k_wake, "_wake"},
                 {&k_set, "set"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].name == NULL &&
            (*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return -1;
        }
    }
    return 0;
}

PyObject *
configure_fired(PyObject *module, PyObject *args)
{
    PyObject *hub, *kind, *name_bits;
    if (!PyArg_ParseTuple(args, "OOO:configure_fired", &hub, &kind, &name_bits)) {
        return NULL;
    }
    if (fired_hub != NULL || context_var == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_fired: once, after configure_hub()");
        return NULL;
    }
    if (!PyType_Check(hub)) {
        PyErr_SetString(PyExc_TypeError, "configure_fired: the hub must be a class");
        return NULL;
    }
    /* The head is made from bytes: the name's index takes 4 of them. */
    long bits = PyLong_AsLong(name_bits);
    if (bits != 32) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "configure_fired: NAME_BITS must be 32");
        }
        return NULL;
    }
    PyObject *hooks[3];
    PyObject *keys[3] = {s_event_fired, s_delivery_queued, s_event_posted};
    for (int i = 0; i < 3; i++) {
        if ((hooks[i] = _PyType_Lookup((PyTypeObject *)hub, keys[i])) == NULL) {
            PyErr_Format(PyExc_AttributeError, "configure_fired: the hub has no %U", keys[i]);
            return NULL;
        }
    }
    if (intern_all() < 0 || (bits192 = PyLong_FromLong(192)) == NULL ||
        (shift64 = PyLong_FromLong(64)) == NULL) {
        return NULL;
    }
    py_event_fired = Py_NewRef(hooks[0]);
    py_delivery_queued = Py_NewRef(hooks[1]);
    py_event_posted = Py_NewRef(hooks[2]);
    fire_kind = Py_NewRef(kind);
    fired_hub = (PyTypeObject *)Py_NewRef(hub);
    Py_RETURN_NONE;
}

PyObject *
configure_sink(PyObject *module, PyObject *args)
{
    PyObject *sink, *deque;
    if (!PyArg_ParseTuple(args, "OO:configure_sink", &sink, &deque)) {
        return NULL;
    }
    if (sink_type != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_sink: once");
        return NULL;
    }
    if (!PyType_Check(sink) || !PyType_Check(deque)) {
        PyErr_SetString(PyExc_TypeError, "configure_sink: the sink and the deque must be classes");
        return NULL;
    }
    if (intern_all() < 0) {
        return NULL;
    }
    deque_type = (PyTypeObject *)Py_NewRef(deque);
    sink_type = (PyTypeObject *)Py_NewRef(sink);
    Py_RETURN_NONE;
}
