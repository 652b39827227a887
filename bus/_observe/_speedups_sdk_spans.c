/* Templates, attribute values, contexts and spans for the C maker of SDK
 * spans (_speedups_sdk.c says what it makes and why, _speedups_sdk.h what
 * its files share). */
#include "_speedups_sdk.h"

#include <limits.h>

/* Interned keys and fixed values, made once at import (sdk_names_init). */
PyObject *S_LAST, *S_DICT, *K_ARGS, *K_KWARGS, *K_RESULT, *K_LISTENERS, *K_QUEUED, *K_THREAD;
PyObject *K_CALLER, *K_SERVICE, *K_PATTERN, *K_METHOD, *K_RPC_SYSTEM;
PyObject *K_MSG_SYSTEM, *K_OP_TYPE, *K_OP_NAME, *K_DESTINATION;
PyObject *V_BUS, *V_SEND, *V_PROCESS, *P_SEND, *P_PROCESS;

int
sdk_names_init(void)
{
    struct {
        PyObject **at;
        const char *text;
    } strings[] = {
        {&S_LAST, "_last"},
        {&S_DICT, "__dict__"},
        {&K_ARGS, "bus.args"},
        {&K_KWARGS, "bus.kwargs"},
        {&K_RESULT, "bus.result"},
        {&K_LISTENERS, "bus.listeners"},
        {&K_QUEUED, "bus.queued_ms"},
        {&K_THREAD, "thread.name"},
        {&K_CALLER, "bus.caller"},
        {&K_SERVICE, "bus.service"},
        {&K_PATTERN, "bus.listener.pattern"},
        {&K_METHOD, "rpc.method"},
        {&K_RPC_SYSTEM, "rpc.system.name"},
        {&K_MSG_SYSTEM, "messaging.system"},
        {&K_OP_TYPE, "messaging.operation.type"},
        {&K_OP_NAME, "messaging.operation.name"},
        {&K_DESTINATION, "messaging.destination.name"},
        {&V_BUS, "bus"},
        {&V_SEND, "send"},
        {&V_PROCESS, "process"},
        {&P_SEND, "send "},
        {&P_PROCESS, "process "},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (*strings[i].at == NULL &&
            (*strings[i].at = PyUnicode_InternFromString(strings[i].text)) == NULL) {
            return -1;
        }
    }
    return 0;
}

/* -- templates ------------------------------------------------------------------ */

static void
slot_clear(Slot *s)
{
    for (int k = 0; k < 4; k++) {
        Py_CLEAR(s->key[k]);
    }
    Py_CLEAR(s->name);
    Py_CLEAR(s->attrs);
    Py_CLEAR(s->server);
    Py_CLEAR(s->span[0]);
    Py_CLEAR(s->span[1]);
}

void
slots_free(Slot *table)
{
    if (table == NULL) {
        return;
    }
    for (int i = 0; i < TEMPLATES; i++) {
        slot_clear(&table[i]);
    }
    PyMem_Free(table);
}

static Slot *
slot_of(Slot **table, PyObject *const *key, int *found)
{
    if (*table == NULL && (*table = PyMem_Calloc(TEMPLATES, sizeof(Slot))) == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    uintptr_t h = 0;
    for (int k = 0; k < 4; k++) {
        h = (h ^ ((uintptr_t)key[k] >> 4)) * 0x9E3779B97F4A7C15ULL;
    }
    Slot *s = &(*table)[(h >> 32) % TEMPLATES];
    *found = s->key[0] == key[0] && s->key[1] == key[1] && s->key[2] == key[2] &&
             s->key[3] == key[3];
    return s;
}

/* A dict of `n` (key, value) pairs, in order. */
static PyObject *
dict_of(PyObject *const *pairs, int n)
{
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (PyDict_SetItem(d, pairs[2 * i], pairs[2 * i + 1]) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

/* Fill an empty slot for `key`: the span's name and the attribute templates. */
int
make_fire(Slot *s, PyObject *const *key)
{
    PyObject *name = key[0], *caller = key[1];
    PyObject *pairs[] = {
        K_MSG_SYSTEM, V_BUS, K_OP_TYPE, V_SEND, K_OP_NAME, V_SEND, K_DESTINATION, name,
        K_CALLER, caller, K_LISTENERS, Py_None, K_ARGS, Py_None,
    };
    s->name = PyUnicode_Concat(P_SEND, name);
    s->attrs = s->name == NULL ? NULL : dict_of(pairs, 7);
    return s->attrs == NULL ? -1 : 0;
}

int
make_delivery(Slot *s, PyObject *const *key)
{
    PyObject *name = key[0], *pattern = key[1], *service = key[2], *thread = key[3];
    PyObject *pairs[] = {
        K_MSG_SYSTEM, V_BUS, K_OP_TYPE, V_PROCESS, K_OP_NAME, V_PROCESS, K_DESTINATION, name,
        K_SERVICE, service, K_PATTERN, pattern, K_QUEUED, Py_None, K_THREAD, thread,
    };
    /* `if thread:` in the Python code: none for a delivery the mailbox refused. */
    int threaded = thread != Py_None && PyUnicode_GET_LENGTH(thread) > 0;
    s->name = PyUnicode_Concat(P_PROCESS, name);
    s->attrs = s->name == NULL ? NULL : dict_of(pairs, threaded ? 8 : 7);
    return s->attrs == NULL ? -1 : 0;
}

int
make_call(Slot *s, PyObject *const *key)
{
    PyObject *name = key[0], *service = key[1], *caller = key[2], *thread = key[3];
    PyObject *pairs[] = {
        K_RPC_SYSTEM, V_BUS, K_METHOD, name, K_SERVICE, service, K_CALLER, caller,
        K_ARGS, Py_None, K_THREAD, thread, K_QUEUED, Py_None, K_RESULT, Py_None,
    };
    s->name = Py_NewRef(name);
    s->attrs = dict_of(pairs, 5);
    s->server = s->attrs == NULL ? NULL : dict_of(pairs, 8);
    return s->server == NULL ? -1 : 0;
}

static PyObject *span_dict_of(Sdk *self, PyObject *name, int kind);

/* The slot of `key` in *table, made with `make` if it holds another key;
 * its spans are of `kind`, and a call's SERVER span's of `kind` + 1. */
Slot *
template_of(Sdk *self, Slot **table, PyObject *const *key, Maker make, int kind)
{
    int found;
    Slot *s = slot_of(table, key, &found);
    if (s == NULL || found) {
        return s;
    }
    slot_clear(s);
    if (make(s, key) < 0 || (s->span[0] = span_dict_of(self, s->name, kind)) == NULL ||
        (s->server != NULL && (s->span[1] = span_dict_of(self, s->name, kind + 1)) == NULL)) {
        slot_clear(s);
        return NULL;
    }
    for (int k = 0; k < 4; k++) {
        s->key[k] = Py_XNewRef(key[k]);
    }
    return s;
}

/* -- values ----------------------------------------------------------------------- */

/* attrs[key] = the JSON text of v, with key.truncated / key.lossy where the
 * Python code's _put_json sets them: 1, 0 (the Python code's), -1. */
int
set_json(Sdk *self, PyObject *attrs, PyObject *key, PyObject *v, int *marked)
{
    PyObject *text = NULL;
    int truncated = 0, lossy = 0;
    if (Py_IS_TYPE(v, (PyTypeObject *)self->encoded) && PyTuple_GET_SIZE(v) == 3) {
        /* Encoded at once on the hot path: its text as it is. */
        text = Py_NewRef(PyTuple_GET_ITEM(v, 0));
        truncated = PyObject_IsTrue(PyTuple_GET_ITEM(v, 1));
        lossy = PyObject_IsTrue(PyTuple_GET_ITEM(v, 2));
    }
    else {
        int found = json_value(&self->value, self->limit, v);
        if (found < 0) {
            return -1;
        }
        if (found) {
            text = buf_str(&self->value);
        }
        else {
            PyObject *made = PyObject_CallOneArg(self->value_json, v);
            if (made == NULL) {
                return -1;
            }
            if (!PyTuple_CheckExact(made) || PyTuple_GET_SIZE(made) != 3) {
                Py_DECREF(made);
                return 0;
            }
            text = Py_NewRef(PyTuple_GET_ITEM(made, 0));
            truncated = PyObject_IsTrue(PyTuple_GET_ITEM(made, 1));
            lossy = PyObject_IsTrue(PyTuple_GET_ITEM(made, 2));
            Py_DECREF(made);
        }
        if (text == NULL) {
            return -1;
        }
    }
    if (truncated < 0 || lossy < 0) {
        Py_DECREF(text);
        return -1;
    }
    if (!PyUnicode_CheckExact(text)) {
        Py_DECREF(text);
        return 0;
    }
    int rc = PyDict_SetItem(attrs, key, text);
    Py_DECREF(text);
    if (rc < 0) {
        return -1;
    }
    if (truncated || lossy) {
        /* The markers' keys are made as the Python code makes them: key + suffix. */
        const char *suffixes[2] = {".truncated", ".lossy"};
        int set[2] = {truncated, lossy};
        for (int i = 0; i < 2; i++) {
            if (!set[i]) {
                continue;
            }
            PyObject *marker = PyUnicode_FromFormat("%U%s", key, suffixes[i]);
            if (marker == NULL) {
                return -1;
            }
            rc = PyDict_SetItem(attrs, marker, Py_True);
            Py_DECREF(marker);
            if (rc < 0) {
                return -1;
            }
        }
        *marked = 1;
    }
    return 1;
}

/* attrs["bus.queued_ms"] = (later - earlier) / 1e6, as Python computes it:
 * the int difference rounded to a double once, then divided. */
int
set_queued(PyObject *attrs, PyObject *later, PyObject *earlier)
{
    long long a, b;
    TRY(as_i64(later, &a));
    TRY(as_i64(earlier, &b));
    if (b < 0 ? a > LLONG_MAX + b : a < LLONG_MIN + b) {
        return 0; /* the difference is past 64 bits: the Python code's */
    }
    PyObject *queued = PyFloat_FromDouble((double)(a - b) / 1e6);
    if (queued == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(attrs, K_QUEUED, queued);
    Py_DECREF(queued);
    return rc < 0 ? -1 : 1;
}

/* -- contexts and spans ------------------------------------------------------------- */

/* _records.span_context(trace_id, span_id): the SpanContext tuple, unvalidated. */
PyObject *
new_context(Sdk *self, PyObject *trace_id, PyObject *span_id)
{
    PyObject *c = self->context_type->tp_alloc(self->context_type, 6);
    if (c == NULL) {
        return NULL;
    }
    PyObject *items[6] = {trace_id, span_id, Py_False, self->sampled, self->no_state, Py_True};
    for (int i = 0; i < 6; i++) {
        PyTuple_SET_ITEM(c, i, Py_NewRef(items[i]));
    }
    /* Not for the collector: it holds ints and the module's shared flags
     * and state, and a SpanContext ignores attributes set on it, so it is
     * never part of a cycle (as CPython stops tracking a tuple of atoms). */
    PyObject_GC_UnTrack(c);
    return c;
}

/* SpanBuilder._producer: an event's context, made now and kept. */
PyObject *
new_producer(Sdk *self, PyObject *trace_id, PyObject *span_id)
{
    if (PyDict_GET_SIZE(self->producers) >= PRODUCERS_MAX) {
        PyDict_Clear(self->producers);
    }
    PyObject *made = new_context(self, trace_id, span_id);
    if (made != NULL && PyDict_SetItem(self->producers, span_id, made) < 0) {
        Py_CLEAR(made);
    }
    return made;
}

/* A kept event context of `trace_id` (new reference), else NULL with no
 * error, or NULL with an error. */
PyObject *
kept_producer(Sdk *self, PyObject *trace_id, PyObject *span_id)
{
    PyObject *found = PyDict_GetItemWithError(self->producers, span_id);
    if (found == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) < 1) {
        return NULL;
    }
    Py_INCREF(found);
    int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(found, 0), trace_id, Py_EQ);
    if (same <= 0) {
        Py_DECREF(found);
        return NULL;
    }
    return found;
}

/* The parent of a CLIENT, SERVER or PRODUCER span: the last span's context
 * when it is that span (a SERVER span's CLIENT), else a new one. */
PyObject *
parent_of(Sdk *self, PyObject *trace_id, PyObject *parent_id)
{
    int set = PyObject_IsTrue(parent_id);
    if (set <= 0) {
        return set < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (self->last_context != NULL && self->last_context != Py_None) {
        int same = PyObject_RichCompareBool(parent_id, self->last_id, Py_EQ);
        if (same > 0) {
            same = PyObject_RichCompareBool(trace_id, self->last_trace, Py_EQ);
        }
        if (same < 0) {
            return NULL;
        }
        if (same) {
            return Py_NewRef(self->last_context);
        }
    }
    return new_context(self, trace_id, parent_id);
}

void
set_last(Sdk *self, PyObject *trace_id, PyObject *span_id, PyObject *context)
{
    Py_XSETREF(self->last_trace, Py_NewRef(trace_id));
    Py_XSETREF(self->last_id, Py_NewRef(span_id));
    Py_XSETREF(self->last_context, Py_NewRef(context));
}

/* The __dict__ of a span named `name` of `kind`: self->span_dict's copy. */
static PyObject *
span_dict_of(Sdk *self, PyObject *name, int kind)
{
    PyObject *d = PyDict_Copy(self->span_dict);
    if (d == NULL || PyDict_SetItem(d, self->names[A_NAME], name) < 0 ||
        PyDict_SetItem(d, self->names[A_KIND], self->kinds[kind]) < 0) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

/* A ReadableSpan made as SpanBuilder._span makes one, from `shape` (a
 * slot's span dict: its name and kind); steals `attrs`, not the others.
 * Its __dict__ is a copy of `shape`, which holds its attributes in
 * __init__'s order, the shared ones set: setting thirteen attributes one by
 * one (a type lookup and a shared-keys lookup each) cost more than the rest
 * of the span. */
PyObject *
new_span(Sdk *self, PyObject *shape, PyObject *context, PyObject *parent, PyObject *start,
         PyObject *end, PyObject *attrs)
{
    PyObject *d = PyDict_Copy(shape);
    if (d == NULL) {
        Py_DECREF(attrs);
        return NULL;
    }
    PyObject *values[] = {context, parent, start, end, attrs};
    static const int at[] = {A_CONTEXT, A_PARENT, A_START, A_END, A_ATTRIBUTES};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        if (PyDict_SetItem(d, self->names[at[i]], values[i]) < 0) {
            Py_DECREF(d);
            Py_DECREF(attrs);
            return NULL;
        }
    }
    Py_DECREF(attrs);
    /* Not for the collector (the span is): besides atoms, untracked contexts
     * and the untracked attribute dict, it holds only the shared kind,
     * scope, resource and status, and a dict tracks itself again when a
     * container is set in it (an attribute set on the span later). */
    PyObject_GC_UnTrack(d);
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11: allocated as object.__new__ allocates, without the inline
     * values it would set up only for PyObject_GenericSetDict to turn them
     * into a dict and drop it. */
    PyObject *span = self->span_type->tp_alloc(self->span_type, 0);
    if (span == NULL || PyObject_GenericSetDict(span, d, NULL) < 0) {
#else
    /* Later releases keep an instance's attributes inline and know a dict
     * set by the type's __dict__ setter only (PyObject_GenericSetDict
     * leaves the inline values in charge in 3.13): made as the Python code
     * makes it, `span.__dict__ = d`. */
    PyObject *span = PyBaseObject_Type.tp_new(self->span_type, self->no_args, NULL);
    if (span == NULL || PyObject_SetAttr(span, S_DICT, d) < 0) {
#endif
        Py_XDECREF(span);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(d);
    return span;
}
