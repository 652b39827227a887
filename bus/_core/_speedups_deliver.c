/* The handler's span entered and left, and the bus observer's hooks of a
 * traced delivery (see _speedups_hooks.c).
 *
 * enter_span and Hub.handler_returned serve calls and deliveries alike.
 * Hub.delivery_started and delivery_ended as method descriptors around the
 * Python methods, for the delivery of an event whose head is one packed int
 * (_heads: its trace id, the event's span id, its send time and the index of
 * its name): the listener's CONSUMER span made current in a context of its
 * own (delivery_started), and, when no watcher looks and the listener
 * returned without annotating its span, the flat DELIVERY tuple handed to
 * the trace sink (delivery_ended). Anything else (a head kept as a tuple, a
 * watcher, an error, annotations) goes to the Python methods, before
 * anything was done.
 */
#include "_speedups.h"

#include "_speedups_long.h"

static PyObject *delivery_kind;
static int name_bits; /* _heads.NAME_BITS: 0 until configure_deliveries */

/* A packed head (_heads.pack_head) is at most NAME_BITS + 64 + 64 + 128 bits. */
#define HEAD_WORDS 5

/* The fields of a packed head, read from its digits as _heads.head_parts
 * reads them with shifts and masks: 1, or 0 when it is no int of the
 * packed layout (negative, or a trace id past 128 bits: Python's turn). */
typedef struct {
    uint64_t trace_high, trace_low, span_id, sent_ns, index;
} Head;

static int
head_of(PyObject *ticket, Head *head)
{
    uint64_t words[HEAD_WORDS];
    if (name_bits == 0 || !PyLong_CheckExact(ticket) || !long_words(ticket, words, HEAD_WORDS)) {
        return 0;
    }
    size_t at = (size_t)name_bits;
    if (long_field(words, HEAD_WORDS, at + 256, 64) != 0) {
        return 0; /* a trace id of more than 128 bits */
    }
    head->index = long_field(words, HEAD_WORDS, 0, name_bits);
    head->sent_ns = long_field(words, HEAD_WORDS, at, 64);
    head->span_id = long_field(words, HEAD_WORDS, at + 64, 64);
    head->trace_low = long_field(words, HEAD_WORDS, at + 128, 64);
    head->trace_high = long_field(words, HEAD_WORDS, at + 192, 64);
    return 1;
}

/* -- the handler's span ------------------------------------------------------------ */

PyObject *
enter_span(PyObject *trace_id, PyObject *span_id, PyObject *extras, PyObject **token)
{
    /* BusSpan(trace_id, span_id, extras), its __init__'s slots */
    PyObject *span = Span_type->tp_new(Span_type, empty_args, NULL);
    PyObject *copy = span == NULL || extras == Py_None ? Py_NewRef(Py_None) : PySequence_List(extras);
    PyObject *ctx = NULL;
    *token = NULL;
    if (span == NULL || copy == NULL) {
        goto failed;
    }
    slot_set(span, p_trace_id, trace_id);
    slot_set(span, p_span_id, span_id);
    slot_set(span, p_live, Py_True);
    slot_set(span, p_context, Py_None);
    slot_set(span, p_extras, copy);
    Py_CLEAR(copy);
    /* enter(span): var.set(Context({_SPAN_KEY: span})), the Context (a dict)
     * filled by dict's own setitem, as its constructor fills it */
    ctx = ((PyTypeObject *)context_type)->tp_new((PyTypeObject *)context_type, empty_args, NULL);
    if (ctx == NULL || PyDict_SetItem(ctx, span_key, span) < 0 ||
        (*token = PyContextVar_Set(context_var, ctx)) == NULL) {
        goto failed;
    }
    Py_DECREF(ctx);
    return span;
failed:
    Py_XDECREF(span);
    Py_XDECREF(copy);
    Py_XDECREF(ctx);
    return NULL;
}

int
own_scope(PyObject *scope, Py_ssize_t size)
{
    return PyTuple_CheckExact(scope) && PyTuple_GET_SIZE(scope) == size &&
           Py_IS_TYPE(PyTuple_GET_ITEM(scope, 0), Span_type);
}

static PyObject *
handler_returned(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL || Span_type == NULL ||
        !(own_scope(args[1], 2) || own_scope(args[1], 3))) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    /* leave(token), then span.release(): a call's scope, or a delivery's */
    if (PyContextVar_Reset(context_var, PyTuple_GET_ITEM(args[1], 1)) < 0) {
        return NULL;
    }
    slot_set(PyTuple_GET_ITEM(args[1], 0), p_live, Py_False);
    Py_RETURN_NONE;
}

/* -- deliveries ----------------------------------------------------------------------- */


int
configure_deliveries(PyObject *kind, PyObject *bits_of_name)
{
    long bits = PyLong_AsLong(bits_of_name);
    if (bits == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (bits <= 0 || bits >= 64) {
        PyErr_SetString(PyExc_ValueError, "configure_hub: NAME_BITS must be from 1 to 63");
        return -1;
    }
    Py_XSETREF(delivery_kind, Py_NewRef(kind));
    name_bits = (int)bits;
    return 0;
}

static PyObject *
delivery_started(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    /* (hub, ticket, worker) */
    Head head;
    if (PyVectorcall_NARGS(nargsf) != 3 || kwnames != NULL || delivery_kind == NULL ||
        !head_of(args[1], &head)) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    /* BusSpan(ticket >> (NAME_BITS + 128), _bits(64)), entered; then the clock */
    PyObject *trace_id = long_from_128(head.trace_high, head.trace_low);
    PyObject *span_id = trace_id == NULL ? NULL : draw(bits64);
    PyObject *token = NULL, *start = NULL, *scope = NULL;
    PyObject *span = span_id == NULL ? NULL : enter_span(trace_id, span_id, Py_None, &token);
    if (span != NULL && (start = time_ns()) != NULL) {
        scope = PyTuple_Pack(3, span, token, start);
    }
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(span);
    Py_XDECREF(token);
    Py_XDECREF(start);
    return scope;
}

static PyObject *
delivery_ended(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    /* (hub, ticket, scope, handler, worker, event, error, elapsed) */
    Head head;
    if (PyVectorcall_NARGS(nargsf) != 8 || kwnames != NULL || delivery_kind == NULL ||
        !head_of(args[1], &head) || !own_scope(args[2], 3) || args[6] != Py_None ||
        !Py_IS_TYPE(args[3], Handler_type) || !Py_IS_TYPE(args[4], Worker_type)) {
        goto slow;
    }
    PyObject *hub = args[0], *handler = args[3];
    PyObject *span = PyTuple_GET_ITEM(args[2], 0), *start = PyTuple_GET_ITEM(args[2], 2);
    PyObject *trace_id = SLOT(span, p_trace_id), *span_id = SLOT(span, p_span_id);
    PyObject *pattern = SLOT(handler, off_h_name), *runtime = SLOT(handler, off_h_destination);
    PyObject *thread = SLOT(args[4], off_w_thread);
    if (SLOT(span, p_extras) != Py_None || trace_id == NULL || span_id == NULL ||
        pattern == NULL || runtime == NULL || thread == NULL) {
        goto slow; /* annotated: span.extras() in Python; or Python raises */
    }
    int fast = traced_unwatched(hub);
    if (fast <= 0) {
        if (fast < 0) {
            return NULL;
        }
        goto slow;
    }
    uint64_t index = head.index;
    if (index >= (uint64_t)PyList_GET_SIZE(seen_hub.names)) {
        goto slow; /* Python raises the IndexError */
    }
    /* Held: what follows may run Python code, which may change the hub. */
    PyObject *name = Py_NewRef(PyList_GET_ITEM(seen_hub.names, (Py_ssize_t)index));
    PyObject *submit = Py_NewRef(seen_hub.submit);
    PyObject *fire_span_id = PyLong_FromUnsignedLongLong(head.span_id);
    PyObject *sent_ns = fire_span_id == NULL ? NULL : PyLong_FromUnsignedLongLong(head.sent_ns);
    PyObject *service = sent_ns == NULL ? NULL : PyObject_GetAttr(runtime, s_name);
    PyObject *end = service == NULL ? NULL : time_ns();
    PyObject *flat = end == NULL ? NULL : PyTuple_New(15);
    if (flat == NULL) {
        Py_DECREF(name);
        Py_DECREF(submit);
        Py_XDECREF(fire_span_id);
        Py_XDECREF(sent_ns);
        Py_XDECREF(service);
        Py_XDECREF(end);
        return NULL;
    }
    /* The DELIVERY layout of _records; each reference taken is given to it. */
    PyObject *items[15] = {Py_NewRef(delivery_kind), Py_NewRef(trace_id), fire_span_id,
                           Py_NewRef(span_id), name, Py_NewRef(pattern), service, sent_ns,
                           Py_NewRef(start), end, Py_NewRef(thread), Py_NewRef(Py_None),
                           Py_NewRef(Py_None), Py_NewRef(Py_None), Py_NewRef(Py_None)};
    for (Py_ssize_t i = 0; i < 15; i++) {
        PyTuple_SET_ITEM(flat, i, items[i]);
    }
    /* Atoms only: in no cycle, for the collector to pass over (see call_ended). */
    PyObject_GC_UnTrack(flat);
    int rc = call_discard(submit, &flat, 1);
    Py_DECREF(submit);
    Py_DECREF(flat);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
slow:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
HandlerReturned_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)handler_returned);
}

static PyObject *
DeliveryStarted_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)delivery_started);
}

static PyObject *
DeliveryEnded_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)delivery_ended);
}

PyTypeObject HandlerReturned_Type = WRAPPER_TYPE(
    "HandlerReturned", "Hub.handler_returned with its context left in C.", HandlerReturned_new);
PyTypeObject DeliveryStarted_Type = WRAPPER_TYPE(
    "DeliveryStarted", "Hub.delivery_started with the listener's span entered in C.",
    DeliveryStarted_new);
PyTypeObject DeliveryEnded_Type = WRAPPER_TYPE(
    "DeliveryEnded", "Hub.delivery_ended with its flat record made in C.", DeliveryEnded_new);
