/* Events: the firing side of a traced event (see _speedups.c).
 *
 * fire_traced() is what bus._observe._hub.Hub's event_fired, delivery_queued
 * (per listener) and event_posted do for a traced event no watcher and no
 * tap sees, done by fire_event's C path (_speedups_fire.c) in one go, with
 * no Python frame and no list between them: the ids, the arguments frozen
 * (atoms, and tuples or dicts of atoms, as they are; anything else through
 * the Python freeze), the event's packed head (_heads: 128 + 64 + 64 + 32
 * bits, made from 64-bit words), the deliveries posted with it as their ticket,
 * and the flat FIRE tuple of _records handed to the trace sink. It draws
 * the ids as the Python code does (as words: _speedups_ids.c): one
 * getrandbits(192) for a new trace
 * (its trace id the top 128 bits, the event's span id the low 64, drawn
 * again while either is 0), one getrandbits(64) under a parent span.
 *
 * It returns 0, having done nothing, whenever something is unusual, and the
 * caller then asks the Python methods: a hub that is not exactly Hub or
 * whose event hooks are not its own, no sink, watchers or taps, a replay
 * mark or a parent span that is not a BusSpan in the context (or a trace id
 * wider than 128 bits), an event name the hub's table has no room for.
 * Whether a watcher looks is read as the event starts (as call_sent does).
 * The FIRE record goes to the sink through submit_record (_speedups_sink.c).
 */
#include "_speedups.h"
#include "_speedups_long.h"

#include <time.h>

static PyTypeObject *fired_hub;
static PyObject *fire_kind, *py_event_fired, *py_delivery_queued, *py_event_posted;
static PyObject *k_sink, *k_watchers, *k_taps, *k_submit, *k_limit, *k_redact, *k_name_index,
    *k_add_name;

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
 * it is not such an int (the Python code's turn). */
static int
split128(PyObject *value, uint64_t words[2])
{
    return PyLong_CheckExact(value) && long_words(value, words, 2) ? 0 : 1;
}

/* Whether the hub records events that no watcher or tap sees: 1 (its state
 * in seen), 0 (Python's turn), -1 on error. */
static int
unwatched(PyObject *hub)
{
    /* The class's version tag when its hooks were last found its own: any
     * change to the class (or a base) gives it a new one. */
    static unsigned int own_hooks;
    if (!Py_IS_TYPE(hub, fired_hub)) {
        return 0; /* a subclass: theirs to run */
    }
    if (own_hooks == 0 || fired_hub->tp_version_tag != own_hooks ||
        !PyType_HasFeature(fired_hub, Py_TPFLAGS_VALID_VERSION_TAG)) {
        own_hooks = 0;
        if (_PyType_Lookup(fired_hub, s_event_fired) != py_event_fired ||
            _PyType_Lookup(fired_hub, s_delivery_queued) != py_delivery_queued ||
            _PyType_Lookup(fired_hub, s_event_posted) != py_event_posted) {
            return 0; /* a hook replaced (a test's spy): theirs to run */
        }
        /* the lookups gave the class a valid tag, if it can have one */
        if (PyType_HasFeature(fired_hub, Py_TPFLAGS_VALID_VERSION_TAG)) {
            own_hooks = fired_hub->tp_version_tag;
        }
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
    /* The last name found, while the table is the same dict, unchanged. */
    static PyObject *last_names, *last_name; /* the name: a strong reference */
    static uint64_t last_tag;
    static uint32_t last_index;
    uint64_t tag = DICT_TAG(names);
    if (tag != TAG_UNKNOWN && names == last_names && tag == last_tag && name == last_name) {
        *index = last_index;
        return 1;
    }
    last_names = NULL;
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
            /* Read after add_name, which may have added it: the tag now. */
            Py_INCREF(name);
            Py_XSETREF(last_name, name);
            last_index = *index;
            last_tag = DICT_TAG(names);
            last_names = names;
        }
    }
    Py_DECREF(found);
    return rc;
}

/* The event's trace id and span id, drawn as Hub.event_fired draws them
 * (_heads.event_ids: never 0); under a parent only the span id. Their
 * words in ids: the span id, then the trace id's low and high 64 bits
 * (under a parent: already there). 0, or -1 on error. */
static int
draw_ids(int parented, uint64_t ids[3])
{
    for (;;) {
        uint64_t drawn[3];
        if (draw_words(parented ? 1 : 3, drawn) < 0) {
            return -1;
        }
        ids[0] = drawn[0]; /* the low 64 bits */
        if (!parented) {
            ids[1] = drawn[1];
            ids[2] = drawn[2];
        }
        if (ids[0] != 0 && (parented || ids[1] != 0 || ids[2] != 0)) {
            return 0;
        }
        /* 0 is no id: drawn again, as in Python */
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
    /* The head holds the name's index in 32 bits: see configure_fired. */
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
    if (draw_ids(found == 1, ids) < 0 ||
        (found == 0 && (trace_id = long_from_words(ids + 1, 2)) == NULL) ||
        (span_id = PyLong_FromUnsignedLongLong(ids[0])) == NULL ||
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
    /* 288 bits, from the least significant: the name's index (32), the send
     * time (64), the event's span id (64) and its trace id (128). */
    uint64_t head_words[5] = {
        (uint64_t)index | sent_ns << 32,  (sent_ns >> 32) | ids[0] << 32,
        (ids[0] >> 32) | ids[1] << 32,    (ids[1] >> 32) | ids[2] << 32,
        ids[2] >> 32,
    };
    if ((sent = PyLong_FromUnsignedLongLong(sent_ns)) == NULL ||
        (head = long_from_words(head_words, 5)) == NULL) {
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
    rc = submit_record(submit, flat) < 0 ? -1 : 1;
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
                 {&k_name_index, "_name_index"}, {&k_add_name, "add_name"}};
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
    if (intern_all() < 0) {
        return NULL;
    }
    py_event_fired = Py_NewRef(hooks[0]);
    py_delivery_queued = Py_NewRef(hooks[1]);
    py_event_posted = Py_NewRef(hooks[2]);
    fire_kind = Py_NewRef(kind);
    fired_hub = (PyTypeObject *)Py_NewRef(hub);
    Py_RETURN_NONE;
}
