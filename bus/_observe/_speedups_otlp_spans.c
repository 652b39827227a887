/* The spans of flat records as OTLP JSON text, for the C encoder of
 * trace-file lines (_speedups_otlp.c says which records are written here).
 * Each writer mirrors the Python code's maker (bus/_observe/_spans.py,
 * _call, _fire, _delivery) and its text (_otlp_lines.py), attribute by
 * attribute, in the same order. */
#include "_speedups_otlp.h"

#include <limits.h>


/* The JSON of one atom (str, int, float, bool, None) as json.dumps writes it. */
static int
atom_json(Buf *b, PyObject *v)
{
    if (PyUnicode_CheckExact(v)) {
        return put_string(b, v);
    }
    if (PyLong_CheckExact(v)) {
        long long n;
        int found = as_i64(v, &n);
        return found <= 0 ? found : (buf_int(b, n) < 0 ? -1 : 1);
    }
    if (v == Py_True) {
        return PUT(b, "true") < 0 ? -1 : 1;
    }
    if (v == Py_False) {
        return PUT(b, "false") < 0 ? -1 : 1;
    }
    if (v == Py_None) {
        return PUT(b, "null") < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) {
            return 0; /* marked lossy by the Python code */
        }
        return buf_float(b, d) < 0 ? -1 : 1;
    }
    return 0;
}

/* The JSON of a value kept by freeze(), as _Spans._put_json makes it, into
 * b; 0 when it is the Python code's. */
int
json_value(Buf *b, Py_ssize_t limit, PyObject *v)
{
    b->len = 0;
    b->ascii = 1;
    int found;
    if (PyTuple_CheckExact(v)) {
        Py_ssize_t n = PyTuple_GET_SIZE(v);
        if (PUT(b, "[") < 0) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i && PUT(b, ",") < 0) {
                return -1;
            }
            found = atom_json(b, PyTuple_GET_ITEM(v, i));
            if (found <= 0) {
                return found;
            }
        }
        if (PUT(b, "]") < 0) {
            return -1;
        }
    }
    else {
        found = atom_json(b, v);
        if (found <= 0) {
            return found;
        }
    }
    /* Past json_limit the Python code cuts it (at a character) and marks it. */
    Py_ssize_t chars = b->len;
    if (!b->ascii) {
        chars = 0;
        for (Py_ssize_t i = 0; i < b->len; i++) {
            chars += ((unsigned char)b->data[i] & 0xc0) != 0x80;
        }
    }
    return chars <= limit;
}

/* One attribute whose value is a str given as UTF-8. */
static int
put_text_attr(Buf *b, const char *key, Py_ssize_t key_len, const char *text, Py_ssize_t n)
{
    if (PUT(b, ",{\"key\":\"") < 0 || buf_put(b, key, key_len) < 0 ||
        PUT(b, "\",\"value\":{\"stringValue\":\"") < 0 || buf_escaped(b, text, n) < 0 ||
        PUT(b, "\"}}") < 0) {
        return -1;
    }
    return 0;
}

static int
put_marker(Buf *b, const char *key, Py_ssize_t key_len, const char *suffix)
{
    if (PUT(b, ",{\"key\":\"") < 0 || buf_put(b, key, key_len) < 0 ||
        buf_put(b, suffix, (Py_ssize_t)strlen(suffix)) < 0 ||
        PUT(b, "\",\"value\":{\"boolValue\":true}}") < 0) {
        return -1;
    }
    return 0;
}

/* `key` (bus.args, bus.kwargs, bus.result) with the JSON of `v` as its string
 * value, and the .truncated and .lossy markers where the Python code sets
 * them. Keys are written as they are: they need no escapes. */
int
put_json_attr(Encoder *self, Buf *b, const char *key, PyObject *v)
{
    Py_ssize_t key_len = (Py_ssize_t)strlen(key);
    if (Py_IS_TYPE(v, (PyTypeObject *)self->encoded) && PyTuple_GET_SIZE(v) == 3) {
        /* Encoded at once on the hot path: written whatever its length. */
        PyObject *text = PyTuple_GET_ITEM(v, 0);
        if (!PyUnicode_CheckExact(text)) {
            return 0;
        }
        const char *data;
        Py_ssize_t n;
        PyObject *owner;
        int found = utf8_of(text, &data, &n, &owner);
        if (found <= 0) {
            return found;
        }
        int rc = put_text_attr(b, key, key_len, data, n);
        Py_XDECREF(owner);
        if (rc < 0) {
            return -1;
        }
        int truncated = PyObject_IsTrue(PyTuple_GET_ITEM(v, 1));
        int lossy = PyObject_IsTrue(PyTuple_GET_ITEM(v, 2));
        if (truncated < 0 || lossy < 0 ||
            (truncated && put_marker(b, key, key_len, ".truncated") < 0) ||
            (lossy && put_marker(b, key, key_len, ".lossy") < 0)) {
            return -1;
        }
        return 1;
    }
    int found = json_value(&self->value, self->limit, v);
    if (found < 0) {
        return -1;
    }
    if (found) {
        return put_text_attr(b, key, key_len, self->value.data, self->value.len) < 0 ? -1 : 1;
    }
    /* The Python code's own _put_json, for what is not written here. */
    PyObject *made = PyObject_CallOneArg(self->value_json, v);
    if (made == NULL) {
        return -1;
    }
    int rc = 0;
    if (PyTuple_CheckExact(made) && PyTuple_GET_SIZE(made) == 3 &&
        PyUnicode_CheckExact(PyTuple_GET_ITEM(made, 0))) {
        const char *data;
        Py_ssize_t n;
        PyObject *owner;
        rc = utf8_of(PyTuple_GET_ITEM(made, 0), &data, &n, &owner);
        if (rc > 0) {
            int truncated = PyObject_IsTrue(PyTuple_GET_ITEM(made, 1));
            int lossy = PyObject_IsTrue(PyTuple_GET_ITEM(made, 2));
            if (truncated < 0 || lossy < 0 || put_text_attr(b, key, key_len, data, n) < 0 ||
                (truncated && put_marker(b, key, key_len, ".truncated") < 0) ||
                (lossy && put_marker(b, key, key_len, ".lossy") < 0)) {
                rc = -1;
            }
            Py_XDECREF(owner);
        }
    }
    Py_DECREF(made);
    return rc;
}

/* A str-valued attribute whose key needs no escapes. */
int
put_str_attr(Buf *b, const char *key, PyObject *value)
{
    if (PUT(b, ",{\"key\":\"") < 0 || buf_put(b, key, (Py_ssize_t)strlen(key)) < 0 ||
        PUT(b, "\",\"value\":{\"stringValue\":") < 0) {
        return -1;
    }
    int found = put_string(b, value);
    if (found <= 0) {
        return found;
    }
    return PUT(b, "}}") < 0 ? -1 : 1;
}

/* bus.queued_ms: (later - earlier) / 1e6, as Python divides an int by a
 * float (the difference rounded to a double once, then divided). */
int
put_queued(Buf *b, long long later, long long earlier)
{
    if (earlier < 0 ? later > LLONG_MAX + earlier : later < LLONG_MIN + earlier) {
        return 0; /* the difference is past 64 bits: the Python code's */
    }
    long long diff = later - earlier;
    if (PUT(b, ",{\"key\":\"bus.queued_ms\",\"value\":{\"doubleValue\":") < 0) {
        return -1;
    }
    /* 10**15 ns is eleven days; past that (never, in practice) the slow way. */
    if (diff > -1000000000000000LL && diff < 1000000000000000LL) {
        if (buf_micros(b, diff) < 0) {
            return -1;
        }
    }
    else if (buf_float(b, (double)diff / 1e6) < 0) {
        return -1;
    }
    return PUT(b, "}}") < 0 ? -1 : 1;
}

/* The opening of a span, up to its attributes' '[' ; `name` is prefixed. */
static int
put_head(Encoder *self, Buf *b, PyObject *trace_id, uint64_t span_id, uint64_t parent_id,
         const char *prefix, PyObject *name, int kind, long long start, long long end)
{
    if (begin_span(self, b) < 0 || PUT(b, "{\"traceId\":\"") < 0) {
        return -1;
    }
    int found = put_trace_id(b, trace_id);
    if (found <= 0) {
        return found;
    }
    if (PUT(b, "\",\"spanId\":\"") < 0 || buf_hex(b, span_id, 16) < 0) {
        return -1;
    }
    if (parent_id && (PUT(b, "\",\"parentSpanId\":\"") < 0 || buf_hex(b, parent_id, 16) < 0)) {
        return -1;
    }
    if (PUT(b, "\",\"flags\":") < 0 || buf_int(b, self->flags) < 0 || PUT(b, ",\"name\":\"") < 0 ||
        buf_put(b, prefix, (Py_ssize_t)strlen(prefix)) < 0) {
        return -1;
    }
    const char *data;
    Py_ssize_t n;
    PyObject *owner;
    found = utf8_of(name, &data, &n, &owner);
    if (found <= 0) {
        return found;
    }
    int rc = buf_escaped(b, data, n);
    Py_XDECREF(owner);
    if (rc < 0 || PUT(b, "\",\"kind\":") < 0 || buf_int(b, kind) < 0 ||
        PUT(b, ",\"startTimeUnixNano\":\"") < 0 || buf_int(b, start) < 0 ||
        PUT(b, "\",\"endTimeUnixNano\":\"") < 0 || buf_int(b, end) < 0 ||
        PUT(b, "\",\"attributes\":[") < 0) {
        return -1;
    }
    return 1;
}

/* Where a span begins: after a comma, when the batch's spans are a str's. */
int
begin_span(Encoder *self, Buf *b)
{
    return !self->separate && b->len ? PUT(b, ",") : 0;
}

/* Close the span (attributes, an empty status); write_many marks its end. */
int
finish(Encoder *self, Buf *b)
{
    if (PUT(b, "],\"status\":{}}") < 0) {
        return -1;
    }
    return self->separate ? marks_add(&self->marks, b->len, 0) : 0;
}

/* Whether a record's transport attributes (`wire`) are absent: None or {}. */
static int
no_wire(PyObject *wire)
{
    return wire == Py_None || (PyDict_CheckExact(wire) && PyDict_GET_SIZE(wire) == 0);
}

static int
call(Encoder *self, PyObject **r)
{
    /* (CALL, trace_id, parent_id, client_id, server_id, name, caller, service,
     *  args, kwargs, sent_ns, handled_ns, end_ns, thread, result,
     *  error, traceback, status_message, extras, hop, wire) */
    PyObject *name = r[5], *caller = r[6], *service = r[7], *thread = r[13];
    if (r[15] != Py_None || r[17] != Py_None || r[18] != Py_None || r[19] != Py_None ||
        !no_wire(r[20]) || !PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(caller) ||
        !PyUnicode_CheckExact(service) || !PyUnicode_CheckExact(thread)) {
        return 0;
    }
    uint64_t parent, client, server;
    long long sent, handled, end;
    TRY(as_u64(r[2], &parent));
    TRY(as_u64(r[3], &client));
    TRY(as_u64(r[4], &server));
    TRY(as_i64(r[10], &sent));
    TRY(as_i64(r[11], &handled));
    TRY(as_i64(r[12], &end));
    int kwargs = PyObject_IsTrue(r[9]);
    OK(kwargs);
    Buf *b = &self->batch;
    TRY(put_head(self, b, r[1], client, parent, "", name, self->kinds[K_CLIENT], sent, end));
    Py_ssize_t attrs_at = b->len; /* the SERVER span's attributes begin with these */
    OK(PUT(b, "{\"key\":\"rpc.system.name\",\"value\":{\"stringValue\":\"bus\"}}"));
    TRY(put_str_attr(b, "rpc.method", name));
    TRY(put_str_attr(b, "bus.service", service));
    TRY(put_str_attr(b, "bus.caller", caller));
    TRY(put_json_attr(self, b, "bus.args", r[8]));
    if (kwargs) {
        TRY(put_json_attr(self, b, "bus.kwargs", r[9]));
    }
    Py_ssize_t shared_len = b->len - attrs_at;
    OK(finish(self, b));
    /* 0 cannot happen here: the same ids and name were written above. */
    TRY(put_head(self, b, r[1], server, client, "", name, self->kinds[K_SERVER], handled, end));
    /* The shared attributes again, copied from the CLIENT span's text in
     * the same buffer: room first, since growing it may move it. */
    if (b->cap - b->len < shared_len && buf_grow(b, shared_len) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, b->data + attrs_at, (size_t)shared_len);
    b->len += shared_len;
    TRY(put_str_attr(b, "thread.name", thread));
    TRY(put_queued(b, handled, sent));
    TRY(put_json_attr(self, b, "bus.result", r[14]));
    OK(finish(self, b));
    return 1;
}

/* 1: the record's spans are added to the batch; 0: the record is the Python
 * code's (nothing added); -1: an error (the batch may hold part of it). */
int
otlp_build(Encoder *self, PyObject *record)
{
    if (!PyTuple_CheckExact(record) || PyTuple_GET_SIZE(record) == 0) {
        return 0;
    }
    PyObject *tag = PyTuple_GET_ITEM(record, 0);
    if (!PyLong_CheckExact(tag)) {
        return 0;
    }
    long kind = PyLong_AsLong(tag);
    Py_ssize_t size = PyTuple_GET_SIZE(record);
    PyObject **r = &PyTuple_GET_ITEM(record, 0);
    if (kind == DELIVERY && size == DELIVERY_SIZE) {
        return otlp_delivery(self, r);
    }
    if (kind == FIRE && size == FIRE_SIZE) {
        return otlp_fire(self, r);
    }
    if (kind == CALL && size == CALL_SIZE) {
        return call(self, r);
    }
    if (kind == -1 && PyErr_Occurred()) {
        PyErr_Clear();
    }
    return 0;
}
