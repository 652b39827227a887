/* The spans of a CALL, a FIRE and a DELIVERY record for the C maker of SDK
 * spans (_speedups_sdk.c): each mirrors the Python code's maker
 * (_span_parts.py: _call, _fire, _delivery; _spans.py: SpanBuilder._span),
 * attribute by attribute, context by context. */
#include "_speedups_sdk.h"

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

/* A record's one span, of context and parent (NULL: an error is set),
 * appended to out, and its context made the last: 1, or -1. Takes context,
 * parent and attrs. */
static int
put_one(Sdk *self, PyObject *shape, PyObject *context, PyObject *parent, PyObject *start,
        PyObject *end, PyObject *attrs, PyObject *trace_id, PyObject *span_id, PyObject *out)
{
    if (parent == NULL) {
        Py_XDECREF(context);
        Py_DECREF(attrs);
        return -1;
    }
    PyObject *span = new_span(self, shape, context, parent, start, end, attrs);
    Py_DECREF(parent);
    int rc = span == NULL || append_all(out, &span, 1) < 0 ? -1 : 1;
    if (rc > 0) {
        set_last(self, trace_id, span_id, context);
    }
    Py_XDECREF(span);
    Py_DECREF(context);
    return rc;
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
    return put_one(self, s->span[0], context, parent, r[8], r[9], attrs, trace_id, span_id, out);
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
    return put_one(self, s->span[0], context, parent, r[8], r[9], attrs, trace_id, span_id, out);
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
int
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
