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
static AttrCache names_seen; /* runtime.name */
static int name_bits; /* _heads.NAME_BITS: 0 until configure_deliveries */

/* The fields of a packed head, read from its digits as _heads.head_parts
 * reads them with shifts and masks: 1, or 0 when it is no int of the
 * packed layout (negative, or a trace id past 128 bits: Python's turn).
 * Each field reads only the digits that hold it. */
int
head_of(PyObject *ticket, Head *head)
{
    const digit *digits;
    Py_ssize_t count;
    if (name_bits == 0 || !PyLong_CheckExact(ticket) || !long_digits(ticket, &digits, &count)) {
        return 0;
    }
    size_t at = (size_t)name_bits;
    if (digits_bits(digits, count) > at + 256) {
        return 0; /* a trace id of more than 128 bits */
    }
    head->index = digits_field(digits, count, 0, name_bits);
    head->sent_ns = digits_field(digits, count, at, 64);
    head->span_id = digits_field(digits, count, at + 64, 64);
    head->trace_low = digits_field(digits, count, at + 128, 64);
    head->trace_high = digits_field(digits, count, at + 192, 64);
    return 1;
}

/* -- attributes read per delivery ------------------------------------------------- */

PyObject *
attr_seen(PyObject *obj, PyObject *name, AttrCache *cache)
{
    PyObject **where = _PyObject_GetDictPtr(obj);
    PyObject *dict = where == NULL ? NULL : *where;
    uint64_t tag = dict == NULL ? TAG_UNKNOWN : DICT_TAG(dict);
    if (tag != TAG_UNKNOWN) {
        for (int i = 0; i < ATTRS_SEEN; i++) {
            AttrSeen *seen = &cache->seen[i];
            if (seen->dict == dict && seen->tag == tag && seen->name == name) {
                return Py_NewRef(seen->value);
            }
        }
    }
    PyObject *value = PyObject_GetAttr(obj, name);
    /* Kept only where the attribute is the dict's entry (no property), read
     * after getattr, which may have run Python code; in place of the entry
     * kept longest. */
    where = value == NULL ? NULL : _PyObject_GetDictPtr(obj);
    dict = where == NULL ? NULL : *where;
    if (dict != NULL && (tag = DICT_TAG(dict)) != TAG_UNKNOWN) {
        PyObject *entry = PyDict_GetItemWithError(dict, name);
        if (entry == value) {
            for (int i = 0; i < ATTRS_SEEN; i++) {
                if (cache->seen[i].dict == dict) {
                    cache->seen[i].dict = NULL; /* an older read of this dict */
                }
            }
            cache->seen[cache->next] = (AttrSeen){dict, tag, name, value};
            cache->next = (cache->next + 1) % ATTRS_SEEN;
        }
        else if (entry == NULL && PyErr_Occurred()) {
            Py_CLEAR(value);
        }
    }
    return value;
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
        (*token = var_set(context_var, ctx)) == NULL) {
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

int
scope_left(PyObject *scope)
{
    if (Span_type == NULL || !(own_scope(scope, 2) || own_scope(scope, 3))) {
        return 0;
    }
    /* leave(token), then span.release(): a call's scope, or a delivery's */
    if (PyContextVar_Reset(context_var, PyTuple_GET_ITEM(scope, 1)) < 0) {
        return -1;
    }
    slot_set(PyTuple_GET_ITEM(scope, 0), p_live, Py_False);
    return 1;
}

static PyObject *
handler_returned(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    int left = PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL ? 0 : scope_left(args[1]);
    if (left == 0) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    if (left < 0) {
        return NULL;
    }
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
    return probe_scopes();
}

int
hooks_shadowed(PyObject *dict)
{
    PyObject *names[5] = {s_delivery_started, s_handler_returned, s_delivery_ended, s_call_started,
                          s_call_ended};
    for (int i = 0; i < 5; i++) {
        if (names[i] == NULL) {
            return 1; /* not configured: nothing is known */
        }
        int found = PyDict_Contains(dict, names[i]);
        if (found != 0) {
            return found;
        }
    }
    return 0;
}

/* Whether Hub's three hooks named are the C types given, kept in *version
 * as Hub's tp_version_tag when they were last seen so: while it holds,
 * Hub's attributes have not changed (0: unknown). Then whether the hub's
 * own __dict__ sets no hook. */
static int
hooks_ours(PyObject *hub, PyObject *const *names, PyTypeObject *const *types,
           unsigned int *version)
{
    if (Hub_type == NULL || !Py_IS_TYPE(hub, Hub_type) || delivery_kind == NULL) {
        return 0;
    }
    if (*version == 0 || !PyType_HasFeature(Hub_type, Py_TPFLAGS_VALID_VERSION_TAG) ||
        Hub_type->tp_version_tag != *version) {
        for (int i = 0; i < 3; i++) {
            PyObject *hook = _PyType_Lookup(Hub_type, names[i]);
            if (hook == NULL || !Py_IS_TYPE(hook, types[i])) {
                *version = 0;
                return 0;
            }
        }
        /* _PyType_Lookup gave the type a version tag, where it can have one. */
        *version = PyType_HasFeature(Hub_type, Py_TPFLAGS_VALID_VERSION_TAG)
                       ? Hub_type->tp_version_tag
                       : 0;
    }
    if (traced_unwatched(hub) < 0) {
        return -1;
    }
    return seen_hub.own;
}

int
delivery_hooks_ours(PyObject *hub)
{
    static unsigned int version;
    PyObject *names[3] = {s_delivery_started, s_handler_returned, s_delivery_ended};
    PyTypeObject *types[3] = {&DeliveryStarted_Type, &HandlerReturned_Type, &DeliveryEnded_Type};
    return hooks_ours(hub, names, types, &version);
}

int
call_hooks_ours(PyObject *hub)
{
    static unsigned int version;
    PyObject *names[3] = {s_call_started, s_handler_returned, s_call_ended};
    PyTypeObject *types[3] = {&CallStarted_Type, &HandlerReturned_Type, &CallEnded_Type};
    return hooks_ours(hub, names, types, &version);
}

PyObject *
delivery_begin(const Head *head, Entered **state)
{
    /* BusSpan(ticket >> (NAME_BITS + 128), _bits(64)), entered; then the clock */
    Entered *kept = NULL;
    PyObject *trace_id = long_from_128(head->trace_high, head->trace_low);
    PyObject *span_id = trace_id == NULL ? NULL : draw(bits64);
    PyObject *token = NULL, *start = NULL, *scope = NULL, *span = NULL;
    if (span_id != NULL) {
        span = state != NULL ? span_enter(trace_id, span_id, &kept, &token)
                             : enter_span(trace_id, span_id, Py_None, &token);
    }
    if (span != NULL && (start = time_ns()) != NULL) {
        scope = kept != NULL ? span_scope(kept, 3) : NULL;
        if (scope != NULL) {
            PyObject *old = PyTuple_GET_ITEM(scope, 2);
            PyTuple_SET_ITEM(scope, 2, start); /* the reference taken */
            Py_DECREF(old);
            start = NULL;
        }
        else {
            scope = PyTuple_Pack(3, span, token, start);
        }
    }
    if (scope == NULL && span != NULL) {
        /* leave what was entered: the caller never saw it */
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
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(span);
    Py_XDECREF(token);
    Py_XDECREF(start);
    return scope;
}

int
span_left(PyObject *scope, Py_ssize_t size, Entered **state)
{
    if (Span_type == NULL || !own_scope(scope, size)) {
        span_drop(*state); /* the Python method resets with the scope's token */
        *state = NULL;
        return 0;
    }
    /* leave(token), then span.release() */
    if (span_leave(PyTuple_GET_ITEM(scope, 1), state) < 0) {
        return -1;
    }
    slot_set(PyTuple_GET_ITEM(scope, 0), p_live, Py_False);
    return 1;
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
    return delivery_begin(&head, NULL);
}

int
delivery_finish(PyObject *const *args, const Head *head)
{
    /* (hub, ticket, scope, handler, worker, event, error, elapsed) */
    if (delivery_kind == NULL || !own_scope(args[2], 3) || args[6] != Py_None ||
        !Py_IS_TYPE(args[3], Handler_type) || !Py_IS_TYPE(args[4], Worker_type)) {
        return 0;
    }
    PyObject *hub = args[0], *handler = args[3];
    PyObject *span = PyTuple_GET_ITEM(args[2], 0), *start = PyTuple_GET_ITEM(args[2], 2);
    PyObject *trace_id = SLOT(span, p_trace_id), *span_id = SLOT(span, p_span_id);
    PyObject *pattern = SLOT(handler, off_h_name), *runtime = SLOT(handler, off_h_destination);
    PyObject *thread = SLOT(args[4], off_w_thread);
    if (SLOT(span, p_extras) != Py_None || trace_id == NULL || span_id == NULL ||
        pattern == NULL || runtime == NULL || thread == NULL) {
        return 0; /* annotated: span.extras() in Python; or Python raises */
    }
    int fast = traced_unwatched(hub);
    if (fast <= 0) {
        return fast;
    }
    uint64_t index = head->index;
    if (index >= (uint64_t)PyList_GET_SIZE(seen_hub.names)) {
        return 0; /* Python raises the IndexError */
    }
    /* Held: what follows may run Python code, which may change the hub. */
    PyObject *name = Py_NewRef(PyList_GET_ITEM(seen_hub.names, (Py_ssize_t)index));
    PyObject *submit = Py_NewRef(seen_hub.submit);
    PyObject *fire_span_id = PyLong_FromUnsignedLongLong(head->span_id);
    PyObject *sent_ns = fire_span_id == NULL ? NULL : PyLong_FromUnsignedLongLong(head->sent_ns);
    PyObject *service = sent_ns == NULL ? NULL : attr_seen(runtime, s_name, &names_seen);
    PyObject *end = service == NULL ? NULL : time_ns();
    PyObject *flat = end == NULL ? NULL : PyTuple_New(15);
    if (flat == NULL) {
        Py_DECREF(name);
        Py_DECREF(submit);
        Py_XDECREF(fire_span_id);
        Py_XDECREF(sent_ns);
        Py_XDECREF(service);
        Py_XDECREF(end);
        return -1;
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
    return rc < 0 ? -1 : 1;
}

static PyObject *
delivery_ended(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Head head;
    int done = PyVectorcall_NARGS(nargsf) != 8 || kwnames != NULL || !head_of(args[1], &head)
                   ? 0
                   : delivery_finish(args, &head);
    if (done == 0) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    if (done < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
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

int
span_left_after(PyObject *observer, int direct, int (*ours_now)(PyObject *), PyObject *scope,
                Py_ssize_t size, Entered **state)
{
    /* Read again: the handler may have set a hook of its own on the hub. */
    int ours = direct ? ours_now(observer) : 0;
    if (ours < 0) {
        /* The span is left all the same; the error goes on up. */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (span_left(scope, size, state) < 0) {
            PyErr_WriteUnraisable(observer);
        }
        PyErr_Restore(t, v, tb);
        return -1;
    }
    int left = ours > 0 ? span_left(scope, size, state) : 0;
    if (left == 0) {
        span_drop(*state); /* the Python method resets with the scope's token */
        *state = NULL;
    }
    return left;
}
