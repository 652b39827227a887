/* The optional C accelerator of the verbs (bus._core._accel).
 *
 * The innermost steps of an event and a call, with exactly the semantics of
 * their Python reference code, which stays the fallback and the definition.
 * This file is the module and its set-up (configure); the rest:
 *
 *   _speedups_fire.c   FireEvent: BusCore.fire_event as a method descriptor,
 *                      the fan-out (route cache, counted dispatch, the
 *                      bounded-mailbox check, the put; on an observed bus the
 *                      observer's hooks where _fire_observed calls them), and
 *                      what every such wrapper shares.
 *   _speedups_lane.c   what it does per listener (Runtime.post, inlined).
 *   _speedups_exec.c   ExecuteCommand and FutureResult: execute_command's
 *                      local call, and CommandFuture.result's plain wait.
 *   _speedups_drain.c  drain: a one-thread service's mailbox loop, which runs
 *                      deliveries and calls and returns any other item to the
 *                      Python loop (Runtime._serve_mailbox).
 *   _speedups_call.c   the calls drain runs, and CommandFuture's state.
 *   _speedups_hooks.c  the bus observer's hooks of a traced call (Hub's
 *                      call_sent, call_started, handler_returned, call_ended).
 *   _speedups_deliver.c  and of a traced delivery (delivery_started,
 *                      delivery_ended).
 *   _speedups_fired.c  the firing side of a traced event (Hub's event hooks).
 *   _speedups_ids.c    random ids drawn as 64-bit words, ints made of them,
 *                      and the caller's name.
 *   _speedups_sink.c   SinkSubmit: TraceSink.submit, and how hooks submit.
 *
 * Anything unusual goes to the Python code before anything was done, or,
 * once a handler has run, to the Python functions that end it
 * (Runtime._delivery_failed, Runtime._call_finished).
 *
 * Slotted attributes (Handler, HandlerStats, Worker, CommandFuture, Binder)
 * are read and written at the offsets their member descriptors give, for
 * exactly those classes (configure() receives them); the state of a bus, its
 * router and a runtime is read from their __dict__s, again only when the dict
 * changed (PEP 509 version tags, CPython 3.11); every write the Python code
 * makes is made, in the same order. Where this code relies on a layout
 * CPython does not promise (itertools.count, SimpleQueue, _thread.lock),
 * configure() probes it first and falls back to their methods. A queued
 * item is left out of the cyclic garbage collector (see deliver()).
 */
#include "_speedups.h"

/* -- what configure() is given and works out --------------------------------- */

PyTypeObject *Runtime_type, *Handler_type, *Stats_type, *Worker_type;
PyObject *queue_qsize, *queue_put; /* SimpleQueue's method descriptors */
PyObject *deque_append;
PyObject *one;
PyObject *no_kwargs; /* the kwargs of every event fired without */
Py_ssize_t off_h_dispatched, off_h_destination, off_h_fn, off_h_stats, off_h_lane;
Py_ssize_t off_s_calls, off_s_latencies;
Py_ssize_t off_w_event, off_w_since, off_w_current, off_w_handled, off_w_done;

PyObject *s_closing, *s_router, *s_routes, *s_observer, *s_outlet, *s_accepting,
    *s_queue, *s_maxsize, *s_posted, *s_after_post, *s_fail_queued, *s_post, *s_not_delivered,
    *s_event_fired, *s_delivery_queued, *s_delivery_refused, *s_event_posted, *s_waits;

PyTypeObject *count_type, *queue_type;
int count_inline, queue_inline;


int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) {
        return -1;
    }
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ attribute", type->tp_name, name);
        Py_DECREF(descr);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    Py_DECREF(descr);
    return 0;
}

double
perf_counter(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    (void)PyTime_PerfCounterRaw(&t);
    return PyTime_AsSecondsDouble(t);
#else
    return _PyTime_AsSecondsDouble(_PyTime_GetPerfCounter());
#endif
}

static PyTypeObject *
take_type(PyObject *obj, const char *what)
{
    if (!PyType_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "configure: %s must be a class", what);
        return NULL;
    }
    Py_INCREF(obj);
    return (PyTypeObject *)obj;
}

/* Whether itertools.count and SimpleQueue are laid out as count_layout and
 * queue_layout say: probed on objects made here, against what their own
 * methods answer. 0, or -1 on error. */
static int
probe_layouts(PyObject *simple_queue)
{
    PyObject *itertools = PyImport_ImportModule("itertools");
    if (itertools == NULL) {
        return -1;
    }
    PyObject *count_class = PyObject_GetAttrString(itertools, "count");
    Py_DECREF(itertools);
    if (count_class == NULL) {
        return -1;
    }
    if (!PyType_Check(count_class)) {
        PyErr_SetString(PyExc_TypeError, "configure: itertools.count is not a class");
        Py_DECREF(count_class);
        return -1;
    }
    count_type = (PyTypeObject *)count_class;
    PyObject *count = PyObject_CallFunction(count_class, "n", (Py_ssize_t)41);
    if (count == NULL) {
        return -1;
    }
    count_layout *c = (count_layout *)count;
    if (count_type->tp_basicsize == sizeof(count_layout) && c->cnt == 41 && c->long_cnt == NULL) {
        c->cnt++; /* as count_next() would; next() must then give 42 */
        PyObject *next = PyIter_Next(count);
        if (next == NULL) {
            Py_DECREF(count);
            return -1;
        }
        count_inline = PyLong_CheckExact(next) && PyLong_AsSsize_t(next) == 42 && c->cnt == 43;
        Py_DECREF(next);
    }
    Py_DECREF(count);

    queue_type = (PyTypeObject *)Py_NewRef(simple_queue);
    PyObject *queue = PyObject_CallNoArgs(simple_queue);
    if (queue == NULL) {
        return -1;
    }
    int ok = -1;
    if (queue_type->tp_basicsize == sizeof(queue_layout)) {
        for (int i = 0; i < 3; i++) {
            PyObject *done = PyObject_CallMethod(queue, "put", "i", i);
            if (done == NULL) {
                goto probed;
            }
            Py_DECREF(done);
        }
        PyObject *first = PyObject_CallMethod(queue, "get", NULL);
        if (first == NULL) {
            goto probed;
        }
        Py_DECREF(first);
        PyObject *size = PyObject_CallMethod(queue, "qsize", NULL);
        if (size == NULL) {
            goto probed;
        }
        queue_layout *q = (queue_layout *)queue;
        queue_inline = PyLong_AsSsize_t(size) == 2 && q->lst != NULL && PyList_CheckExact(q->lst) &&
                       PyList_GET_SIZE(q->lst) - q->lst_pos == 2;
        Py_DECREF(size);
    }
    ok = 0;
probed:
    Py_DECREF(queue);
    return ok;
}

/* queue.qsize(), or -1 on error */
Py_ssize_t
queue_size(PyObject *queue)
{
    if (queue_inline && Py_IS_TYPE(queue, queue_type)) {
        queue_layout *q = (queue_layout *)queue;
        return PyList_GET_SIZE(q->lst) - q->lst_pos;
    }
    PyObject *size = PyObject_Vectorcall(queue_qsize, &queue, 1, NULL);
    if (size == NULL) {
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(size);
    Py_DECREF(size);
    return n;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *runtime, *handler, *stats, *worker, *simple_queue, *deque;
    if (!PyArg_ParseTuple(args, "OOOOOO:configure", &runtime, &handler, &stats, &worker,
                          &simple_queue, &deque)) {
        return NULL;
    }
    if (Runtime_type != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure: already configured");
        return NULL;
    }
    if ((Runtime_type = take_type(runtime, "Runtime")) == NULL ||
        (Handler_type = take_type(handler, "Handler")) == NULL ||
        (Stats_type = take_type(stats, "HandlerStats")) == NULL ||
        (Worker_type = take_type(worker, "Worker")) == NULL) {
        goto fail;
    }
    if (slot_offset(Handler_type, "dispatched", &off_h_dispatched) ||
        slot_offset(Handler_type, "destination", &off_h_destination) ||
        slot_offset(Handler_type, "fn", &off_h_fn) ||
        slot_offset(Handler_type, "stats", &off_h_stats) ||
        slot_offset(Handler_type, "lane", &off_h_lane) ||
        slot_offset(Stats_type, "calls", &off_s_calls) ||
        slot_offset(Stats_type, "_latencies", &off_s_latencies) ||
        slot_offset(Worker_type, "event", &off_w_event) ||
        slot_offset(Worker_type, "since", &off_w_since) ||
        slot_offset(Worker_type, "current", &off_w_current) ||
        slot_offset(Worker_type, "handled", &off_w_handled) ||
        slot_offset(Worker_type, "done", &off_w_done)) {
        goto fail;
    }
    /* The mailbox state fire_event reads from a runtime's __dict__ must not be
     * shadowed by its class. */
    PyObject *own[] = {s_accepting, s_queue, s_maxsize, s_posted, s_after_post, NULL};
    for (PyObject **name = own; *name != NULL; name++) {
        if (PyObject_HasAttr((PyObject *)Runtime_type, *name)) {
            PyErr_Format(PyExc_TypeError, "configure: Runtime.%U is a class attribute", *name);
            goto fail;
        }
    }
    if ((queue_qsize = PyObject_GetAttrString(simple_queue, "qsize")) == NULL ||
        (queue_put = PyObject_GetAttrString(simple_queue, "put")) == NULL ||
        (deque_append = PyObject_GetAttrString(deque, "append")) == NULL ||
        probe_layouts(simple_queue) < 0) {
        goto fail;
    }
    Py_RETURN_NONE;
fail:
    Py_CLEAR(Runtime_type);
    Py_CLEAR(Handler_type);
    Py_CLEAR(Stats_type);
    Py_CLEAR(Worker_type);
    Py_CLEAR(queue_qsize);
    Py_CLEAR(queue_put);
    Py_CLEAR(deque_append);
    Py_CLEAR(count_type);
    Py_CLEAR(queue_type);
    count_inline = queue_inline = 0;
    return NULL;
}

/* -- calls the firing and the service side share ------------------------------- */

void
take_error(PyObject **type, PyObject **error, PyObject **traceback)
{
    PyErr_Fetch(type, error, traceback);
    PyErr_NormalizeException(type, error, traceback);
    if (*traceback != NULL) {
        PyException_SetTraceback(*error, *traceback);
    }
}

int
call_discard(PyObject *callable, PyObject *const *args, size_t nargs)
{
    PyObject *result = PyObject_Vectorcall(callable, args, nargs, NULL);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

PyObject *
keywords(PyObject *const *values, PyObject *kwnames)
{
    PyObject *kwargs = PyDict_New();
    if (kwargs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), values[i]) < 0) {
            Py_DECREF(kwargs);
            return NULL;
        }
    }
    return kwargs;
}

int
count_next(PyObject *counter)
{
    /* next(counter) without making the int it returns, which nobody reads */
    if (count_inline && Py_IS_TYPE(counter, count_type)) {
        count_layout *count = (count_layout *)counter;
        if (count->long_cnt == NULL && count->cnt < PY_SSIZE_T_MAX - 1) {
            count->cnt++;
            return 0;
        }
    }
    /* next(counter): an itertools.count never ends. */
    PyObject *value = PyIter_Next(counter);
    if (value == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetNone(PyExc_StopIteration);
        }
        return -1;
    }
    Py_DECREF(value);
    return 0;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Runtime, Handler, HandlerStats, Worker, SimpleQueue, deque): the classes "
     "the accelerator works on; once."},
    {"configure_calls", configure_calls, METH_VARARGS,
     "configure_calls(CommandFuture, allocate_lock, settle, Worker, (PENDING, RUNNING, FINISHED, "
     "CANCELLED, CANCELLED_AND_NOTIFIED)): what drain's calls work on; once."},
    {"configure_caller", configure_caller, METH_VARARGS,
     "configure_caller(Binder, workers): what ExecuteCommand and FutureResult work on; once, "
     "after configure() and configure_calls()."},
    {"configure_hub", configure_hub, METH_VARARGS,
     "configure_hub(Hub, CallRecord, BusSpan, CALL, DELIVERY, NAME_BITS, var, Context, span_key, replay_key, freeze, "
     "ATOMIC_TYPES, getrandbits, caller_tls, caller): what the hooks of a traced call work on; "
     "once, after configure()."},
    {"configure_fired", configure_fired, METH_VARARGS,
     "configure_fired(Hub, FIRE, NAME_BITS): what the firing side of a traced event works on; "
     "once, after configure_hub()."},
    {"configure_sink", configure_sink, METH_VARARGS,
     "configure_sink(TraceSink, deque): what SinkSubmit works on; once."},
    {"ids_in_c", ids_in_c, METH_NOARGS,
     "ids_in_c(): whether the hooks draw ids from random's generator in C (see _speedups_ids.c)."},
    {"drain", (PyCFunction)(void (*)(void))drain, METH_FASTCALL,
     "drain(get, worker, failed, finished): run unobserved event deliveries and calls off a "
     "one-thread service's mailbox; return the first other item (False when the thread must "
     "end)."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bus._core._speedups",
    .m_doc = "The optional C accelerator of the verbs (see bus._core._accel).",
    .m_size = -1,
    .m_methods = methods,
};

#define INTERN(var, text)                                                                      \
    if ((var = PyUnicode_InternFromString(text)) == NULL) {                                    \
        return NULL;                                                                           \
    }

PyMODINIT_FUNC
PyInit__speedups(void)
{
    INTERN(s_closing, "_closing");
    INTERN(s_router, "router");
    INTERN(s_routes, "_routes");
    INTERN(s_observer, "observer");
    INTERN(s_outlet, "outlet");
    INTERN(s_accepting, "accepting");
    INTERN(s_queue, "_queue");
    INTERN(s_maxsize, "maxsize");
    INTERN(s_posted, "_posted");
    INTERN(s_after_post, "_after_post");
    INTERN(s_fail_queued, "fail_queued");
    INTERN(s_post, "post");
    INTERN(s_not_delivered, "_not_delivered");
    INTERN(s_event_fired, "event_fired");
    INTERN(s_delivery_queued, "delivery_queued");
    INTERN(s_delivery_refused, "delivery_refused");
    INTERN(s_event_posted, "event_posted");
    INTERN(s_waits, "_waits");
    if ((one = PyLong_FromLong(1)) == NULL || (no_kwargs = PyDict_New()) == NULL || PyType_Ready(&FireEvent_Type) < 0 ||
        PyType_Ready(&Lane_Type) < 0 || PyType_Ready(&ExecuteCommand_Type) < 0 ||
        PyType_Ready(&FutureResult_Type) < 0 || PyType_Ready(&CallSent_Type) < 0 ||
        PyType_Ready(&CallStarted_Type) < 0 || PyType_Ready(&HandlerReturned_Type) < 0 ||
        PyType_Ready(&CallEnded_Type) < 0 || PyType_Ready(&DeliveryStarted_Type) < 0 ||
        PyType_Ready(&DeliveryEnded_Type) < 0 || PyType_Ready(&SinkSubmit_Type) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "FireEvent", (PyObject *)&FireEvent_Type) < 0 ||
        PyModule_AddObjectRef(module, "ExecuteCommand", (PyObject *)&ExecuteCommand_Type) < 0 ||
        PyModule_AddObjectRef(module, "FutureResult", (PyObject *)&FutureResult_Type) < 0 ||
        PyModule_AddObjectRef(module, "CallSent", (PyObject *)&CallSent_Type) < 0 ||
        PyModule_AddObjectRef(module, "CallStarted", (PyObject *)&CallStarted_Type) < 0 ||
        PyModule_AddObjectRef(module, "HandlerReturned", (PyObject *)&HandlerReturned_Type) < 0 ||
        PyModule_AddObjectRef(module, "CallEnded", (PyObject *)&CallEnded_Type) < 0 ||
        PyModule_AddObjectRef(module, "DeliveryStarted", (PyObject *)&DeliveryStarted_Type) < 0 ||
        PyModule_AddObjectRef(module, "DeliveryEnded", (PyObject *)&DeliveryEnded_Type) < 0 ||
        PyModule_AddObjectRef(module, "SinkSubmit", (PyObject *)&SinkSubmit_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
