/* The SDK spans of common flat records, in C (bus._observe._spans.SpanBuilder).
 *
 * SdkSpans(...).build_many(records, out, failed) appends the ReadableSpans
 * of each record to `out`, exactly the spans SpanBuilder's Python code makes
 * (that code is the reference and the fallback): the same class, the same
 * attributes set in ReadableSpan.__init__'s order, the same attribute dicts
 * (contents and order), SpanContexts made as _records.span_context makes
 * them and shared where the Python code shares them (an event's with its
 * deliveries, through the builder's own dict of them; a CLIENT span's with
 * its SERVER span, through the builder's _last), and the Status, scope and
 * resource objects shared. The records made here are those the file encoder
 * writes in C (_speedups_otlp.c):
 *
 *   CALL       ran here (no hop), neither failed nor refused, no extras, no
 *              transport attributes;
 *   FIRE       no extras, no transport attributes;
 *   DELIVERY   no failure, no extras, no transport attributes;
 *
 * whose names, services and threads are str, ids plain ints. An argument's
 * or a result's JSON is written by the file encoder's own writer
 * (json_value), or, for what that does not write (a dict, a huge int, NaN,
 * text past json_limit), by the Python code's _put_json (`value_json`). Any
 * other record goes whole to the Python code (`fallback`), in order, and so
 * does one on which anything here fails: it then makes the record's spans,
 * or reports it as it always does.
 *
 * The fixed attributes of a span are copied from a template per (event,
 * caller), (event, pattern, service, thread) and (command, service, caller,
 * thread), which holds them in their order with a placeholder (None) for
 * the keys set each time, so a copy needs no resize and the order is the
 * Python code's. A template is found by the identity of the strs it was
 * made of, which it holds; a table of TEMPLATES slots, each replaced by the
 * next key that hashes to it.
 */
#include "_speedups_otlp.h"

#include <limits.h>

#define TEMPLATES 64
#define PRODUCERS_MAX 1024 /* _spans._PRODUCERS_MAX */

typedef struct {
    PyObject *key[4]; /* strong references; key[0] NULL: an empty slot */
    PyObject *name;   /* the span's name: "send x", "process x", the command's */
    PyObject *attrs;  /* CLIENT, PRODUCER or CONSUMER attributes */
    PyObject *server; /* a call's SERVER attributes */
    PyObject *span[2]; /* the __dict__ of its spans (a call's CLIENT and SERVER), name and
                          kind set: see new_span */
} Slot;

/* The attributes of a ReadableSpan, in the order its __init__ sets them. */
enum {
    A_NAME, A_CONTEXT, A_KIND, A_INFO, A_SCOPE, A_PARENT, A_START, A_END, A_ATTRIBUTES,
    A_EVENTS, A_LINKS, A_RESOURCE, A_STATUS, A_COUNT
};

typedef struct {
    PyObject_HEAD
    Py_ssize_t limit;      /* json_limit */
    PyObject *value_json;  /* value -> (text, truncated, lossy): SpanBuilder._value_json */
    PyObject *fallback;    /* (record, out, failed) -> made: the Python code, per record */
    PyObject *owner;       /* the SpanBuilder: its _last, kept in step around the fallback */
    PyObject *producers;   /* the builder's dict: an event's span id -> its context */
    PyObject *encoded;     /* the Encoded type */
    PyTypeObject *span_type;    /* ReadableSpan */
    PyTypeObject *context_type; /* SpanContext */
    PyObject *sampled, *no_state; /* a context's trace flags and trace state */
    PyObject *kinds[4];    /* SpanKind CLIENT, SERVER, PRODUCER, CONSUMER */
    PyObject *scope, *resource, *status;
    PyObject *names[A_COUNT];
    PyObject *no_args;     /* () */
    PyObject *span_dict;   /* a span's __dict__: names, shared values, None for the rest */
    /* The last span made (SpanBuilder._last): strong references or NULL. */
    PyObject *last_trace, *last_id, *last_context;
    Buf value;
    int busy;
    Slot *fires, *deliveries, *calls;
} Sdk;

/* Interned keys and fixed values, made once at import. */
static PyObject *S_LAST, *S_DICT, *K_ARGS, *K_KWARGS, *K_RESULT, *K_LISTENERS, *K_QUEUED, *K_THREAD;
static PyObject *K_CALLER, *K_SERVICE, *K_PATTERN, *K_METHOD, *K_RPC_SYSTEM;
static PyObject *K_MSG_SYSTEM, *K_OP_TYPE, *K_OP_NAME, *K_DESTINATION;
static PyObject *V_BUS, *V_SEND, *V_PROCESS, *P_SEND, *P_PROCESS;

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

static void
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
static int
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

static int
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

static int
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

typedef int (*Maker)(Slot *, PyObject *const *);

static PyObject *span_dict_of(Sdk *self, PyObject *name, int kind);

/* The slot of `key` in *table, made with `make` if it holds another key;
 * its spans are of `kind`, and a call's SERVER span's of `kind` + 1. */
static Slot *
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
static int
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
static int
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
static PyObject *
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
static PyObject *
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
static PyObject *
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
static PyObject *
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

static void
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
static PyObject *
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

/* -- records ----------------------------------------------------------------------- */

static int
no_wire(PyObject *wire)
{
    return wire == Py_None || (PyDict_CheckExact(wire) && PyDict_GET_SIZE(wire) == 0);
}

static int
all_ints(PyObject *const *r, const int *at, int n)
{
    for (int i = 0; i < n; i++) {
        if (!PyLong_CheckExact(r[at[i]])) {
            return 0;
        }
    }
    return 1;
}

/* Append the spans in made[0..n) to out (the record is whole): 0 or -1. */
static int
append_all(PyObject *out, PyObject **made, int n)
{
    for (int i = 0; i < n; i++) {
        if (PyList_Append(out, made[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
sdk_fire(Sdk *self, PyObject *const *r, PyObject *out)
{
    /* (FIRE, trace_id, parent_id, span_id, name, caller, args, kwargs,
     *  sent_ns, end_ns, listeners, extras, wire) */
    static const int ids[] = {1, 2, 3};
    PyObject *key[4] = {r[4], r[5], NULL, NULL};
    if (r[11] != Py_None || !no_wire(r[12]) || !PyUnicode_CheckExact(r[4]) ||
        !PyUnicode_CheckExact(r[5]) || !all_ints(r, ids, 3)) {
        return 0;
    }
    int kwargs = PyObject_IsTrue(r[7]);
    OK(kwargs);
    Slot *s = template_of(self, &self->fires, key, make_fire, K_PRODUCER);
    if (s == NULL) {
        return -1;
    }
    PyObject *attrs = PyDict_Copy(s->attrs);
    if (attrs == NULL) {
        return -1;
    }
    int marked = 0, rc = PyDict_SetItem(attrs, K_LISTENERS, r[10]) < 0 ? -1 : 1;
    if (rc > 0) {
        rc = set_json(self, attrs, K_ARGS, r[6], &marked);
    }
    if (rc > 0 && kwargs) {
        rc = set_json(self, attrs, K_KWARGS, r[7], &marked);
    }
    if (rc <= 0) {
        Py_DECREF(attrs);
        return rc;
    }
    PyObject *trace_id = r[1], *span_id = r[3];
    PyObject *context = kept_producer(self, trace_id, span_id);
    if (context == NULL && !PyErr_Occurred()) {
        context = new_producer(self, trace_id, span_id);
    }
    PyObject *parent = context == NULL ? NULL : parent_of(self, trace_id, r[2]);
    if (parent == NULL) {
        Py_XDECREF(context);
        Py_DECREF(attrs);
        return -1;
    }
    PyObject *span = new_span(self, s->span[0], context, parent, r[8], r[9], attrs);
    Py_DECREF(parent);
    rc = span == NULL || append_all(out, &span, 1) < 0 ? -1 : 1;
    if (rc > 0) {
        set_last(self, trace_id, span_id, context);
    }
    Py_XDECREF(span);
    Py_DECREF(context);
    return rc;
}

static int
sdk_delivery(Sdk *self, PyObject *const *r, PyObject *out)
{
    /* (DELIVERY, trace_id, fire_span_id, span_id, name, pattern, service,
     *  fire_sent_ns, start_ns, end_ns, thread, error, traceback, extras, wire) */
    static const int ids[] = {1, 2, 3};
    PyObject *key[4] = {r[4], r[5], r[6], r[10]};
    if (r[11] != Py_None || r[13] != Py_None || !no_wire(r[14]) || !PyUnicode_CheckExact(r[4]) ||
        !PyUnicode_CheckExact(r[5]) || !PyUnicode_CheckExact(r[6]) ||
        !(r[10] == Py_None || PyUnicode_CheckExact(r[10])) || !all_ints(r, ids, 3)) {
        return 0;
    }
    Slot *s = template_of(self, &self->deliveries, key, make_delivery, K_CONSUMER);
    if (s == NULL) {
        return -1;
    }
    PyObject *attrs = PyDict_Copy(s->attrs);
    if (attrs == NULL) {
        return -1;
    }
    int rc = set_queued(attrs, r[8], r[7]);
    if (rc <= 0) {
        Py_DECREF(attrs);
        return rc;
    }
    PyObject *trace_id = r[1], *parent_id = r[2], *span_id = r[3];
    PyObject *context = new_context(self, trace_id, span_id), *parent = NULL;
    int has_parent = PyObject_IsTrue(parent_id); /* an exact int: never fails */
    if (context != NULL && has_parent) {
        /* The event's context, made once for it and its deliveries. */
        parent = kept_producer(self, trace_id, parent_id);
        if (parent == NULL && !PyErr_Occurred()) {
            parent = new_producer(self, trace_id, parent_id);
        }
    }
    else if (context != NULL) {
        parent = Py_NewRef(Py_None);
    }
    if (parent == NULL) {
        Py_XDECREF(context);
        Py_DECREF(attrs);
        return -1;
    }
    PyObject *span = new_span(self, s->span[0], context, parent, r[8], r[9], attrs);
    Py_DECREF(parent);
    rc = span == NULL || append_all(out, &span, 1) < 0 ? -1 : 1;
    if (rc > 0) {
        set_last(self, trace_id, span_id, context);
    }
    Py_XDECREF(span);
    Py_DECREF(context);
    return rc;
}

/* A call's two attribute dicts, in *client and *server: 1, 0, -1. */
static int
call_attrs(Sdk *self, PyObject *const *r, Slot *s, PyObject **client, PyObject **server)
{
    *client = *server = NULL;
    int kwargs = PyObject_IsTrue(r[9]), marked = 0, rc;
    OK(kwargs);
    *client = PyDict_Copy(s->attrs);
    if (*client == NULL) {
        return -1;
    }
    rc = set_json(self, *client, K_ARGS, r[8], &marked);
    if (rc > 0 && kwargs) {
        rc = set_json(self, *client, K_KWARGS, r[9], &marked);
    }
    if (rc <= 0) {
        return rc;
    }
    if (kwargs || marked) {
        /* Keys past the template's: its SERVER template would put thread.name
         * before them. As the Python code: the client's, then the rest. */
        *server = PyDict_Copy(*client);
        if (*server == NULL || PyDict_SetItem(*server, K_THREAD, r[13]) < 0 ||
            PyDict_SetItem(*server, K_QUEUED, Py_None) < 0) {
            return -1;
        }
    }
    else {
        *server = PyDict_Copy(s->server);
        if (*server == NULL ||
            PyDict_SetItem(*server, K_ARGS, PyDict_GetItemWithError(*client, K_ARGS)) < 0) {
            return -1;
        }
    }
    rc = set_queued(*server, r[11], r[10]);
    if (rc > 0) {
        rc = set_json(self, *server, K_RESULT, r[14], &marked);
    }
    return rc;
}

static int
sdk_call(Sdk *self, PyObject *const *r, PyObject *out)
{
    /* (CALL, trace_id, parent_id, client_id, server_id, name, caller, service,
     *  args, kwargs, sent_ns, handled_ns, end_ns, thread, result,
     *  error, traceback, status_message, extras, hop, wire) */
    static const int ids[] = {1, 2, 3, 4};
    PyObject *key[4] = {r[5], r[7], r[6], r[13]};
    if (r[15] != Py_None || r[17] != Py_None || r[18] != Py_None || r[19] != Py_None ||
        !no_wire(r[20]) || !PyUnicode_CheckExact(r[5]) || !PyUnicode_CheckExact(r[6]) ||
        !PyUnicode_CheckExact(r[7]) || !PyUnicode_CheckExact(r[13]) || !all_ints(r, ids, 4)) {
        return 0;
    }
    Slot *s = template_of(self, &self->calls, key, make_call, K_CLIENT);
    if (s == NULL) {
        return -1;
    }
    PyObject *client, *server;
    int rc = call_attrs(self, r, s, &client, &server);
    if (rc <= 0) {
        Py_XDECREF(client);
        Py_XDECREF(server);
        return rc;
    }
    PyObject *trace_id = r[1], *client_id = r[3], *server_id = r[4];
    PyObject *spans[2] = {NULL, NULL};
    PyObject *client_context = new_context(self, trace_id, client_id);
    PyObject *parent = client_context == NULL ? NULL : parent_of(self, trace_id, r[2]);
    if (parent == NULL) {
        Py_DECREF(client);
        Py_DECREF(server);
        Py_XDECREF(client_context);
        return -1;
    }
    spans[0] = new_span(self, s->span[0], client_context, parent, r[10], r[12], client);
    Py_DECREF(parent);
    PyObject *server_context = NULL;
    rc = -1;
    if (spans[0] != NULL) {
        /* The SERVER span's parent: the CLIENT span's context (parent_of, had
         * _last been set), or none for a client id 0. */
        int has_client = PyObject_IsTrue(client_id);
        server_context = new_context(self, trace_id, server_id);
        if (server_context != NULL) {
            spans[1] = new_span(self, s->span[1], server_context,
                                has_client ? client_context : Py_None, r[11], r[12], server);
            server = NULL;
            if (spans[1] != NULL && append_all(out, spans, 2) == 0) {
                rc = 1;
                set_last(self, trace_id, server_id, server_context);
            }
        }
    }
    Py_XDECREF(server);
    Py_XDECREF(spans[0]);
    Py_XDECREF(spans[1]);
    Py_DECREF(client_context);
    Py_XDECREF(server_context);
    return rc;
}

/* The spans of one record appended to out: 1, 0 (the Python code's: nothing
 * appended), -1 (nothing appended; an error set). */
static int
sdk_build(Sdk *self, PyObject *record, PyObject *out)
{
    if (!PyTuple_CheckExact(record) || PyTuple_GET_SIZE(record) == 0 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(record, 0))) {
        return 0;
    }
    int overflow;
    long kind = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(record, 0), &overflow);
    Py_ssize_t size = PyTuple_GET_SIZE(record);
    PyObject *const *r = &PyTuple_GET_ITEM(record, 0);
    if (kind == DELIVERY && size == DELIVERY_SIZE) {
        return sdk_delivery(self, r, out);
    }
    if (kind == FIRE && size == FIRE_SIZE) {
        return sdk_fire(self, r, out);
    }
    if (kind == CALL && size == CALL_SIZE) {
        return sdk_call(self, r, out);
    }
    return 0;
}

/* -- the builder's _last, kept in step with the Python code's -------------------- */

static int
read_last(Sdk *self)
{
    PyObject *last = PyObject_GetAttr(self->owner, S_LAST);
    if (last == NULL) {
        return -1;
    }
    if (!PyTuple_CheckExact(last) || PyTuple_GET_SIZE(last) != 3) {
        Py_DECREF(last);
        PyErr_SetString(PyExc_TypeError, "SpanBuilder._last must be a 3-tuple");
        return -1;
    }
    set_last(self, PyTuple_GET_ITEM(last, 0), PyTuple_GET_ITEM(last, 1),
             PyTuple_GET_ITEM(last, 2));
    Py_DECREF(last);
    return 0;
}

static int
write_last(Sdk *self)
{
    if (self->last_context == NULL) {
        return 0;
    }
    PyObject *last = PyTuple_Pack(3, self->last_trace, self->last_id, self->last_context);
    if (last == NULL) {
        return -1;
    }
    int rc = PyObject_SetAttr(self->owner, S_LAST, last);
    Py_DECREF(last);
    return rc;
}

/* -- the type ----------------------------------------------------------------------- */

/* sdk_build, and on an Exception the record is the Python code's after all. */
static int
build_or_hand_back(Sdk *self, PyObject *record, PyObject *out)
{
    int made = sdk_build(self, record, out);
    if (made >= 0) {
        return made;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyErr_Clear();
    return 0;
}

static int
enter(Sdk *self)
{
    if (self->fallback == NULL) {
        PyErr_SetString(PyExc_TypeError, "SdkSpans.__init__ was not called");
        return -1;
    }
    if (self->busy) {
        return 0; /* another call is at it: this one's records are the Python code's */
    }
    if (read_last(self) < 0) {
        return -1;
    }
    self->busy = 1;
    return 1;
}

static int
leave(Sdk *self)
{
    self->busy = 0;
    return write_last(self);
}

static PyObject *
Sdk_build(Sdk *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "build(record, out: list)");
        return NULL;
    }
    int entered = enter(self);
    if (entered <= 0) {
        return entered < 0 ? NULL : PyBool_FromLong(0);
    }
    int made = build_or_hand_back(self, args[0], args[1]);
    if (leave(self) < 0 || made < 0) {
        return NULL;
    }
    return PyBool_FromLong(made);
}

static PyObject *
Sdk_build_many(Sdk *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "build_many(records: list, out: list, failed)");
        return NULL;
    }
    PyObject *records = args[0], *out = args[1], *failed = args[2];
    int entered = enter(self);
    if (entered < 0) {
        return NULL;
    }
    PyObject *made = PyList_New(0);
    if (made == NULL) {
        goto error;
    }
    /* The Python fallback may run any code: re-read the list's size each time. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        Py_INCREF(record);
        int done = entered ? build_or_hand_back(self, record, out) : 0;
        if (done == 0) {
            /* The Python code, with the builder's _last as it would have it. */
            done = entered && write_last(self) < 0 ? -1 : 0;
            if (done == 0) {
                PyObject *argv[3] = {record, out, failed};
                PyObject *ok = PyObject_Vectorcall(self->fallback, argv, 3, NULL);
                done = ok == NULL ? -1 : PyObject_IsTrue(ok);
                Py_XDECREF(ok);
            }
            if (done >= 0 && entered && read_last(self) < 0) {
                done = -1;
            }
        }
        if (done < 0 || (done && PyList_Append(made, record) < 0)) {
            Py_DECREF(record);
            goto error;
        }
        Py_DECREF(record);
    }
    if (entered && leave(self) < 0) {
        Py_DECREF(made);
        return NULL;
    }
    return made;
error:
    Py_XDECREF(made);
    if (entered) {
        self->busy = 0;
        /* The error already set wins; _last as far as it got. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (write_last(self) < 0) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, traceback);
    }
    return NULL;
}

static int
Sdk_init(Sdk *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"owner", "limit", "value_json", "fallback", "encoded", "producers",
                         "span_type", "context_type", "sampled", "no_state", "kinds",
                         "scope", "resource", "status", "names", NULL};
    PyObject *owner, *value_json, *fallback, *encoded, *producers, *span_type, *context_type;
    PyObject *sampled, *no_state, *kinds, *scope, *resource, *status, *names;
    Py_ssize_t limit;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "OnOOO!O!O!O!OOO!OOOO!:SdkSpans", kw, &owner, &limit, &value_json,
            &fallback, &PyType_Type, &encoded, &PyDict_Type, &producers, &PyType_Type,
            &span_type, &PyType_Type, &context_type, &sampled, &no_state, &PyTuple_Type, &kinds,
            &scope, &resource, &status, &PyTuple_Type, &names)) {
        return -1;
    }
    if (!PyCallable_Check(value_json) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "value_json and fallback must be callable");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)encoded, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)context_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "encoded and context_type must be tuple types");
        return -1;
    }
    /* The spans are made as object.__new__ makes them and their attributes
     * set as plain object attributes: only for a class that does the same. */
    PyTypeObject *type = (PyTypeObject *)span_type;
    if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_setattro != PyObject_GenericSetAttr ||
        (type->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        PyErr_SetString(PyExc_TypeError, "span_type must be a plain class (ReadableSpan)");
        return -1;
    }
    if (PyTuple_GET_SIZE(kinds) != 4 || PyTuple_GET_SIZE(names) != A_COUNT) {
        PyErr_Format(PyExc_ValueError, "kinds must hold 4 SpanKinds and names %d names",
                     A_COUNT);
        return -1;
    }
    for (int i = 0; i < A_COUNT; i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "names must be str");
            return -1;
        }
    }
    self->limit = limit;
    PyObject **slots[] = {&self->value_json, &self->fallback, &self->owner, &self->producers,
                          &self->encoded, (PyObject **)&self->span_type,
                          (PyObject **)&self->context_type, &self->sampled, &self->no_state,
                          &self->scope, &self->resource, &self->status};
    PyObject *given[] = {value_json, fallback, owner, producers, encoded, span_type,
                         context_type, sampled, no_state, scope, resource, status};
    for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
        Py_XSETREF(*slots[i], Py_NewRef(given[i]));
    }
    for (int i = 0; i < 4; i++) {
        Py_XSETREF(self->kinds[i], Py_NewRef(PyTuple_GET_ITEM(kinds, i)));
    }
    for (int i = 0; i < A_COUNT; i++) {
        PyObject *name = Py_NewRef(PyTuple_GET_ITEM(names, i));
        PyUnicode_InternInPlace(&name);
        Py_XSETREF(self->names[i], name);
    }
    if (self->no_args == NULL && (self->no_args = PyTuple_New(0)) == NULL) {
        return -1;
    }
    PyObject *shared[A_COUNT] = {
        [A_NAME] = Py_None, [A_CONTEXT] = Py_None, [A_KIND] = Py_None, [A_INFO] = Py_None,
        [A_SCOPE] = scope, [A_PARENT] = Py_None, [A_START] = Py_None, [A_END] = Py_None,
        [A_ATTRIBUTES] = Py_None, [A_EVENTS] = self->no_args, [A_LINKS] = self->no_args,
        [A_RESOURCE] = resource, [A_STATUS] = status,
    };
    /* The __dict__ of a span made as object.__new__ makes it, its attributes
     * set one by one: a dict sharing the class's keys (a split table, where
     * the interpreter has them), whose copies are as small and quick. */
    PyObject *model = PyBaseObject_Type.tp_new(type, self->no_args, NULL);
    if (model == NULL) {
        return -1;
    }
    for (int i = 0; i < A_COUNT; i++) {
        if (PyObject_GenericSetAttr(model, self->names[i], shared[i]) < 0) {
            Py_DECREF(model);
            return -1;
        }
    }
    PyObject *span_dict = PyObject_GenericGetDict(model, NULL);
    Py_DECREF(model);
    if (span_dict == NULL) {
        return -1;
    }
    if (!PyDict_CheckExact(span_dict) || PyDict_GET_SIZE(span_dict) != A_COUNT) {
        Py_DECREF(span_dict);
        PyErr_SetString(PyExc_TypeError, "span_type's instances do not keep a plain __dict__");
        return -1;
    }
    Py_XSETREF(self->span_dict, span_dict);
    self->value.ascii = 1;
    return 0;
}

static int
Sdk_traverse(Sdk *self, visitproc visit, void *arg)
{
    Py_VISIT(self->value_json);
    Py_VISIT(self->fallback);
    Py_VISIT(self->owner);
    Py_VISIT(self->producers);
    Py_VISIT(self->last_context);
    return 0;
}

static int
Sdk_clear(Sdk *self)
{
    Py_CLEAR(self->value_json);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->producers);
    Py_CLEAR(self->last_trace);
    Py_CLEAR(self->last_id);
    Py_CLEAR(self->last_context);
    return 0;
}

static void
Sdk_dealloc(Sdk *self)
{
    PyObject_GC_UnTrack(self);
    Sdk_clear(self);
    Py_CLEAR(self->encoded);
    Py_CLEAR(self->span_type);
    Py_CLEAR(self->context_type);
    Py_CLEAR(self->sampled);
    Py_CLEAR(self->no_state);
    Py_CLEAR(self->scope);
    Py_CLEAR(self->resource);
    Py_CLEAR(self->status);
    Py_CLEAR(self->no_args);
    Py_CLEAR(self->span_dict);
    for (int i = 0; i < 4; i++) {
        Py_CLEAR(self->kinds[i]);
    }
    for (int i = 0; i < A_COUNT; i++) {
        Py_CLEAR(self->names[i]);
    }
    PyMem_Free(self->value.data);
    slots_free(self->fires);
    slots_free(self->deliveries);
    slots_free(self->calls);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Sdk_methods[] = {
    {"build", (PyCFunction)(void (*)(void))Sdk_build, METH_FASTCALL,
     "build(record, out) -> bool: append the record's spans to out, if made here."},
    {"build_many", (PyCFunction)(void (*)(void))Sdk_build_many, METH_FASTCALL,
     "build_many(records, out, failed) -> list: as SpanBuilder.build_many."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject SdkSpans_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bus._observe._speedups_otlp.SdkSpans",
    .tp_basicsize = sizeof(Sdk),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SdkSpans(owner, limit, ...): SpanBuilder's ReadableSpans of common records, in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sdk_init,
    .tp_traverse = (traverseproc)Sdk_traverse,
    .tp_clear = (inquiry)Sdk_clear,
    .tp_dealloc = (destructor)Sdk_dealloc,
    .tp_methods = Sdk_methods,
};

int
sdk_init(void)
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
    return PyType_Ready(&SdkSpans_type);
}
