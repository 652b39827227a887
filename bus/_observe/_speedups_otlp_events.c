/* The spans of an event (FIRE) and of its deliveries (DELIVERY) as OTLP JSON
 * text, for the C encoder of trace-file lines (_speedups_otlp.c), from
 * per-(event, listener) templates of their fixed text.
 *
 * Most of a delivery span's text is the same for every delivery of an event
 * to a listener: its name ("process tick"), its kind, the messaging
 * attributes, the event's name, the service, the listener's pattern and its
 * thread; of an event's span, the same for every fire of it by a caller.
 * Written each time, that text was most of what the trace thread did per
 * span (escaping four or five strings, a dozen small copies, two ints). A
 * template keeps it, made by the same writers on first use, in three
 * pieces around what varies (ids, times, the queue time, arguments):
 *
 *   {"traceId":"...","spanId":"...","parentSpanId":"...   (each time)
 *   A: ","flags":257,"name":"process tick","kind":5,"startTimeUnixNano":"
 *   <start>","endTimeUnixNano":"<end>                      (each time)
 *   B: ","attributes":[...the fixed attributes...
 *   ,{"key":"bus.queued_ms",...} / bus.listeners, bus.args  (each time)
 *   C: ,{"key":"thread.name",...}                          (deliveries)
 *   ],"status":{}}
 *
 * so the text is byte for byte the writers' (and so the Python code's:
 * tests/bus/observe/test_otlp_lines_c.py). A template is found by the
 * identity of the strs it was made of, which it holds (so no other str can
 * take their address while it is kept); a table of TEMPLATES slots, each
 * replaced by the next key that hashes to it.
 */
#include "_speedups_otlp.h"

#include <limits.h>

#define TEMPLATES 64

struct Template {
    PyObject *key[4]; /* strong references; key[0] NULL: an empty slot */
    Buf text;         /* A, B and C, one after another */
    Py_ssize_t a_len, b_len;
};

void
templates_free(Template *table)
{
    if (table == NULL) {
        return;
    }
    for (int i = 0; i < TEMPLATES; i++) {
        for (int k = 0; k < 4; k++) {
            Py_CLEAR(table[i].key[k]);
        }
        PyMem_Free(table[i].text.data);
    }
    PyMem_Free(table);
}

/* The slot of a key in *table (made on first use): a key of 4 objects,
 * compared by identity. *found: whether it holds that key's template. */
static Template *
slot_of(Template **table, PyObject *const *key, int *found)
{
    if (*table == NULL && (*table = PyMem_Calloc(TEMPLATES, sizeof(Template))) == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    uintptr_t h = 0;
    for (int k = 0; k < 4; k++) {
        h = (h ^ ((uintptr_t)key[k] >> 4)) * 0x9E3779B97F4A7C15ULL;
    }
    Template *t = &(*table)[(h >> 32) % TEMPLATES];
    *found = t->key[0] == key[0] && t->key[1] == key[1] && t->key[2] == key[2] &&
             t->key[3] == key[3];
    return t;
}

/* Keep the text just written to t->text as the key's template. */
static void
keep(Template *t, PyObject *const *key)
{
    for (int k = 0; k < 4; k++) {
        Py_XSETREF(t->key[k], Py_XNewRef(key[k]));
    }
}

/* Forget a slot's template (its text was being rewritten and failed). */
static void
forget(Template *t)
{
    for (int k = 0; k < 4; k++) {
        Py_CLEAR(t->key[k]);
    }
}

/* A: ","flags":F,"name":"<prefix><name>","kind":K,"startTimeUnixNano":" */
static int
put_a(Encoder *self, Buf *b, const char *prefix, PyObject *name, int kind)
{
    if (PUT(b, "\",\"flags\":") < 0 || buf_int(b, self->flags) < 0 || PUT(b, ",\"name\":\"") < 0 ||
        buf_put(b, prefix, (Py_ssize_t)strlen(prefix)) < 0) {
        return -1;
    }
    const char *data;
    Py_ssize_t n;
    PyObject *owner;
    int found = utf8_of(name, &data, &n, &owner);
    if (found <= 0) {
        return found;
    }
    int rc = buf_escaped(b, data, n);
    Py_XDECREF(owner);
    if (rc < 0 || PUT(b, "\",\"kind\":") < 0 || buf_int(b, kind) < 0 ||
        PUT(b, ",\"startTimeUnixNano\":\"") < 0) {
        return -1;
    }
    return 1;
}

/* The delivery template's text: A, then B (the attributes up to the
 * queue time), then C (the thread's). 1, 0 (a str that UTF-8 cannot carry:
 * the Python code's), -1. */
static int
make_delivery(Encoder *self, Template *t, PyObject *const *key)
{
    PyObject *name = key[0], *pattern = key[1], *service = key[2], *thread = key[3];
    Buf *b = &t->text;
    TRY(put_a(self, b, "process ", name, self->kinds[K_CONSUMER]));
    t->a_len = b->len;
    OK(PUT(b, "\",\"attributes\":["
              "{\"key\":\"messaging.system\",\"value\":{\"stringValue\":\"bus\"}},"
              "{\"key\":\"messaging.operation.type\",\"value\":{\"stringValue\":\"process\"}},"
              "{\"key\":\"messaging.operation.name\",\"value\":{\"stringValue\":\"process\"}}"));
    TRY(put_str_attr(b, "messaging.destination.name", name));
    TRY(put_str_attr(b, "bus.service", service));
    TRY(put_str_attr(b, "bus.listener.pattern", pattern));
    t->b_len = b->len - t->a_len;
    if (thread != Py_None && PyUnicode_GET_LENGTH(thread)) { /* none when refused */
        TRY(put_str_attr(b, "thread.name", thread));
    }
    return 1;
}

/* The event's template: A, then B (the attributes up to bus.listeners). */
static int
make_fire(Encoder *self, Template *t, PyObject *const *key)
{
    PyObject *name = key[0], *caller = key[1];
    Buf *b = &t->text;
    TRY(put_a(self, b, "send ", name, self->kinds[K_PRODUCER]));
    t->a_len = b->len;
    OK(PUT(b, "\",\"attributes\":["
              "{\"key\":\"messaging.system\",\"value\":{\"stringValue\":\"bus\"}},"
              "{\"key\":\"messaging.operation.type\",\"value\":{\"stringValue\":\"send\"}},"
              "{\"key\":\"messaging.operation.name\",\"value\":{\"stringValue\":\"send\"}}"));
    TRY(put_str_attr(b, "messaging.destination.name", name));
    TRY(put_str_attr(b, "bus.caller", caller));
    t->b_len = b->len - t->a_len;
    return 1;
}

typedef int (*Maker)(Encoder *, Template *, PyObject *const *);

/* The template of a key, made (and kept in its slot) when the slot holds
 * another: 1 (*out), 0 (the Python code's), -1. */
static int
template_of(Encoder *self, Template **table, PyObject *const *key, Maker make, Template **out)
{
    int found;
    Template *t = slot_of(table, key, &found);
    if (t == NULL) {
        return -1;
    }
    if (!found) {
        forget(t);
        t->text.len = 0;
        t->text.ascii = 1;
        TRY(make(self, t, key));
        keep(t, key);
    }
    *out = t;
    return 1;
}

/* The ids that open a span: {"traceId":"...","spanId":"...[","parentSpanId":"...] */
static int
put_ids(Encoder *self, Buf *b, PyObject *trace_id, uint64_t span_id, uint64_t parent_id)
{
    OK(begin_span(self, b));
    OK(PUT(b, "{\"traceId\":\""));
    TRY(put_trace_id(b, trace_id));
    OK(PUT(b, "\",\"spanId\":\""));
    OK(buf_hex(b, span_id, 16));
    if (parent_id) {
        OK(PUT(b, "\",\"parentSpanId\":\""));
        OK(buf_hex(b, parent_id, 16));
    }
    return 1;
}

/* A template's text from `from`, `n` bytes. */
static int
put_piece(Buf *b, const Template *t, Py_ssize_t from, Py_ssize_t n)
{
    b->ascii &= t->text.ascii;
    return buf_put(b, t->text.data + from, n);
}

/* Whether a record's transport attributes (`wire`) are absent: None or {}. */
static int
no_wire(PyObject *wire)
{
    return wire == Py_None || (PyDict_CheckExact(wire) && PyDict_GET_SIZE(wire) == 0);
}

int
otlp_delivery(Encoder *self, PyObject **r)
{
    /* (DELIVERY, trace_id, fire_span_id, span_id, name, pattern, service,
     *  fire_sent_ns, start_ns, end_ns, thread, error, traceback, extras, wire) */
    PyObject *key[4] = {r[4], r[5], r[6], r[10]};
    if (r[11] != Py_None || r[13] != Py_None || !no_wire(r[14]) || !PyUnicode_CheckExact(key[0]) ||
        !PyUnicode_CheckExact(key[1]) || !PyUnicode_CheckExact(key[2]) ||
        !(key[3] == Py_None || PyUnicode_CheckExact(key[3]))) {
        return 0;
    }
    uint64_t parent, span;
    long long sent, start, end;
    TRY(as_u64(r[2], &parent));
    TRY(as_u64(r[3], &span));
    TRY(as_i64(r[7], &sent));
    TRY(as_i64(r[8], &start));
    TRY(as_i64(r[9], &end));
    Template *t;
    TRY(template_of(self, &self->deliveries, key, make_delivery, &t));
    Buf *b = &self->batch;
    TRY(put_ids(self, b, r[1], span, parent));
    OK(put_piece(b, t, 0, t->a_len));
    OK(buf_int(b, start));
    OK(PUT(b, "\",\"endTimeUnixNano\":\""));
    OK(buf_int(b, end));
    OK(put_piece(b, t, t->a_len, t->b_len));
    TRY(put_queued(b, start, sent));
    OK(put_piece(b, t, t->a_len + t->b_len, t->text.len - t->a_len - t->b_len));
    OK(finish(self, b));
    return 1;
}

int
otlp_fire(Encoder *self, PyObject **r)
{
    /* (FIRE, trace_id, parent_id, span_id, name, caller, args, kwargs,
     *  sent_ns, end_ns, listeners, extras, wire) */
    PyObject *key[4] = {r[4], r[5], NULL, NULL};
    if (r[11] != Py_None || !no_wire(r[12]) || !PyUnicode_CheckExact(key[0]) ||
        !PyUnicode_CheckExact(key[1])) {
        return 0;
    }
    uint64_t parent, span;
    long long sent, end, listeners;
    TRY(as_u64(r[2], &parent));
    TRY(as_u64(r[3], &span));
    TRY(as_i64(r[8], &sent));
    TRY(as_i64(r[9], &end));
    TRY(as_i64(r[10], &listeners));
    int kwargs = PyObject_IsTrue(r[7]);
    OK(kwargs);
    Template *t;
    TRY(template_of(self, &self->fires, key, make_fire, &t));
    Buf *b = &self->batch;
    TRY(put_ids(self, b, r[1], span, parent));
    OK(put_piece(b, t, 0, t->a_len));
    OK(buf_int(b, sent));
    OK(PUT(b, "\",\"endTimeUnixNano\":\""));
    OK(buf_int(b, end));
    OK(put_piece(b, t, t->a_len, t->b_len));
    OK(PUT(b, ",{\"key\":\"bus.listeners\",\"value\":{\"intValue\":\""));
    OK(buf_int(b, listeners));
    OK(PUT(b, "\"}}"));
    TRY(put_json_attr(self, b, "bus.args", r[6]));
    if (kwargs) {
        TRY(put_json_attr(self, b, "bus.kwargs", r[7]));
    }
    OK(finish(self, b));
    return 1;
}
