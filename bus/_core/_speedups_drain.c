/* The service's side: a one-thread service's mailbox loop (see _speedups.c);
 * its calls are in _speedups_call.c. */
#include "_speedups.h"

/* -- the service's side ------------------------------------------------------------ */

int
slot_increment(PyObject *obj, Py_ssize_t off)
{
    PyObject *value = SLOT(obj, off);
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a counter of the bus is unset");
        return -1;
    }
    PyObject *more;
#if PY_VERSION_HEX < 0x030C0000
    /* CPython 3.11: a non-negative int below 2**30 is one digit */
    if (PyLong_CheckExact(value) && Py_SIZE(value) == 1 &&
        ((PyLongObject *)value)->ob_digit[0] < PyLong_MASK) {
        if (Py_REFCNT(value) == 1) {
            /* Only this slot holds it (not the small-int cache, nor a reader,
             * who would hold a reference): no one can see it change. */
            ((PyLongObject *)value)->ob_digit[0]++;
            return 0;
        }
        more = PyLong_FromLong((long)((PyLongObject *)value)->ob_digit[0] + 1);
    }
    else
#endif
    if (PyLong_CheckExact(value)) {
        /* int + 1 without the number protocol's dispatch */
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        more = overflow || n == LLONG_MAX ? PyNumber_Add(value, one) : PyLong_FromLongLong(n + 1);
    }
    else {
        more = PyNumber_Add(value, one);
    }
    if (more == NULL) {
        return -1;
    }
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = more;
    Py_DECREF(old);
    return 0;
}

/* Whether item is one drain may run: its handler and statistics of exactly
 * the classes configured, its arguments a tuple and a dict, and as its tag an
 * event's name or a call's future (observed or not). */
static int
runnable(PyObject *item)
{
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 5) {
        return 0;
    }
    PyObject *handler = PyTuple_GET_ITEM(item, 0);
    PyObject *tag = PyTuple_GET_ITEM(item, 3);
    if (!Py_IS_TYPE(handler, Handler_type) || !PyTuple_CheckExact(PyTuple_GET_ITEM(item, 1)) ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(item, 2)) ||
        !(PyUnicode_CheckExact(tag) || call_runnable(item))) {
        return 0;
    }
    PyObject *stats = SLOT(handler, off_h_stats);
    return SLOT(handler, off_h_fn) != NULL && stats != NULL && Py_IS_TYPE(stats, Stats_type) &&
           SLOT(stats, off_s_calls) != NULL && SLOT(stats, off_s_latencies) != NULL;
}

/* Run one delivery as Runtime._serve_mailbox does inline. 1 to go on, 0 when
 * the thread must end (``failed`` said so), -1 on an error of the bus. */
static int run_one(PyObject *worker, PyObject *item, PyObject *failed, PyObject *handler,
                   PyObject *stats, PyObject *fn);
static int run_observed(PyObject *worker, PyObject *item, PyObject *handler, PyObject *stats,
                        PyObject *fn);

/* Run one item runnable() accepted: a delivery, or a call (run_call, which
 * returns 2 for a call it hands back to the Python loop unstarted). */
static int
run_item(PyObject *worker, PyObject *item, PyObject *failed, PyObject *finished)
{
    PyObject *handler = PyTuple_GET_ITEM(item, 0);
    /* Held for the call, as Python's stack would: the handler may drop them. */
    PyObject *stats = Py_NewRef(SLOT(handler, off_h_stats));
    PyObject *fn = Py_NewRef(SLOT(handler, off_h_fn));
    int rc = !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 3))
                 ? run_call(worker, item, finished, handler, stats, fn)
             : PyTuple_GET_ITEM(item, 4) == Py_None
                 ? run_one(worker, item, failed, handler, stats, fn)
                 : run_observed(worker, item, handler, stats, fn);
    Py_DECREF(stats);
    Py_DECREF(fn);
    return rc;
}

static int
run_one(PyObject *worker, PyObject *item, PyObject *failed, PyObject *handler, PyObject *stats,
        PyObject *fn)
{
    PyObject *args = PyTuple_GET_ITEM(item, 1);
    PyObject *kwargs = PyTuple_GET_ITEM(item, 2);
    slot_set(worker, off_w_event, item);
    double start;
    PyObject *since = mark_start(worker, &start);
    if (since == NULL) {
        return -1;
    }
    slot_set(worker, off_w_current, handler);
    PyObject *result = PyObject_Call(fn, args, PyDict_GET_SIZE(kwargs) ? kwargs : NULL);
    if (result == NULL) {
        /* The listener raised: Runtime._delivery_failed does the rest, as the
         * Python loop's except clause does. */
        PyObject *type, *value, *traceback;
        take_error(&type, &value, &traceback);
        PyObject *call[5] = {worker, handler, PyTuple_GET_ITEM(item, 3), value, since};
        PyObject *go_on = PyObject_Vectorcall(failed, call, 5, NULL);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        Py_DECREF(since);
        if (go_on == NULL) {
            return -1;
        }
        int truth = PyObject_IsTrue(go_on);
        Py_DECREF(go_on);
        return truth;
    }
    Py_DECREF(result);
    Py_DECREF(since);
    PyObject *elapsed = PyFloat_FromDouble(perf_counter() - start);
    if (elapsed == NULL) {
        return -1;
    }
    slot_set(worker, off_w_current, Py_None);
    slot_set(worker, off_w_event, Py_None);
    int rc = slot_increment(stats, off_s_calls);
    if (rc == 0) {
        PyObject *append[2] = {SLOT(stats, off_s_latencies), elapsed};
        rc = call_discard(deque_append, append, 2);
    }
    Py_DECREF(elapsed);
    if (rc < 0 || slot_increment(worker, off_w_handled) < 0 ||
        slot_increment(worker, off_w_done) < 0) {
        slot_set(worker, off_w_event, item); /* for the Python loop to count it lost */
        return -1;
    }
    return 1;
}

/* run_delivery for a delivery with a ticket: the observer starts its span,
 * hears the handler return and ends it, where run_delivery tells it. A bus
 * error leaves worker.event for the Python loop. 1, or -1 on error. */
static int
run_observed(PyObject *worker, PyObject *item, PyObject *handler, PyObject *stats, PyObject *fn)
{
    PyObject *args = PyTuple_GET_ITEM(item, 1);
    PyObject *kwargs = PyTuple_GET_ITEM(item, 2);
    PyObject *event = PyTuple_GET_ITEM(item, 3);
    PyObject *ticket = PyTuple_GET_ITEM(item, 4);
    slot_set(worker, off_w_event, item);
    PyObject *observer = observer_of(worker);
    PyObject *scope = NULL, *elapsed = NULL, *type = NULL, *error = NULL, *traceback = NULL;
    Entered *state = NULL; /* the thread's kept span and context, in use */
    int hooks_held = 0;    /* the C hooks were the hub's as the listener returned */
    int rc = -1;
    if (observer == NULL) {
        goto done;
    }
    /* The hub's own C hooks, called without looking them up by name, the
     * ticket's head read once for both (where they are the hub's hooks). */
    Head head;
    int direct = delivery_hooks_ours(observer);
    if (direct < 0) {
        goto done;
    }
    direct = direct && head_of(ticket, &head);
    double start;
    if (direct) {
        PyObject *since = mark_start(worker, &start);
        if (since == NULL) {
            goto done;
        }
        Py_DECREF(since);
        slot_set(worker, off_w_current, handler);
        if ((scope = delivery_begin(&head, &state)) == NULL) {
            goto done;
        }
    }
    else if (start_run(worker, handler, NULL, observer, s_delivery_started, ticket, &start,
                       &scope) < 0) {
        goto done;
    }
    slot_set(worker, off_w_scope, scope);
    PyObject *result = PyObject_Call(fn, args, PyDict_GET_SIZE(kwargs) ? kwargs : NULL);
    if (result == NULL) {
        take_error(&type, &error, &traceback);
        /* runtime.listener_failed(handler, event, error), in the span */
        PyObject *runtime = SLOT(worker, off_w_runtime);
        PyObject *told[4] = {runtime, handler, event, error};
        PyObject *logged = runtime == NULL ? NULL
                                           : PyObject_VectorcallMethod(
                                                 s_listener_failed, told,
                                                 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(logged);
    }
    Py_XDECREF(result);
    /* run_delivery's finally: after the handler, even when listener_failed
     * raised (a bus error, which then goes on up as in Python). */
    int bus_error = PyErr_Occurred() != NULL;
    PyObject *raised_type, *raised, *raised_tb;
    PyErr_Fetch(&raised_type, &raised, &raised_tb);
    if (observer != Py_None) {
        int left = span_left_after(observer, direct, delivery_hooks_ours, scope, 3, &state);
        hooks_held = left == 1;
        PyObject *returned[2] = {observer, scope};
        PyObject *done = left < 0    ? NULL
                         : left == 1 ? Py_NewRef(Py_None)
                                     : PyObject_VectorcallMethod(s_handler_returned, returned,
                                                                 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                                                 NULL);
        if (done == NULL) {
            Py_XDECREF(raised_type);
            Py_XDECREF(raised);
            Py_XDECREF(raised_tb);
            goto done; /* raised in the finally: it replaces the other */
        }
        Py_DECREF(done);
    }
    if (bus_error) {
        PyErr_Restore(raised_type, raised, raised_tb);
        goto done;
    }
    elapsed = PyFloat_FromDouble(perf_counter() - start);
    if (elapsed == NULL) {
        goto done;
    }
    slot_set(worker, off_w_current, Py_None);
    slot_set(worker, off_w_event, Py_None);
    if (error == NULL) {
        PyObject *append[2] = {SLOT(stats, off_s_latencies), elapsed};
        if (slot_increment(stats, off_s_calls) < 0 || call_discard(deque_append, append, 2) < 0) {
            goto failed;
        }
    }
    else {
        PyObject *finish[3] = {stats, elapsed, error};
        PyObject *done = PyObject_VectorcallMethod(s_finish, finish,
                                                   3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (done == NULL) {
            goto failed;
        }
        Py_DECREF(done);
    }
    if (observer != Py_None) {
        PyObject *ended[8] = {observer, ticket, scope, handler, worker, event,
                              error ? error : Py_None, elapsed};
        /* Read again where Python code ran since (stats.finish, on an error). */
        int ours = !direct ? 0 : hooks_held && error == NULL ? 1 : delivery_hooks_ours(observer);
        int finished = ours > 0 ? delivery_finish(ended, &head) : ours;
        if (finished < 0) {
            goto failed;
        }
        if (finished == 0) {
            PyObject *done = PyObject_VectorcallMethod(s_delivery_ended, ended,
                                                       8 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (done == NULL) {
                goto failed;
            }
            Py_DECREF(done);
        }
    }
    if (slot_increment(worker, off_w_handled) < 0 ||
        (error != NULL && slot_increment(worker, off_w_failed) < 0) ||
        slot_increment(worker, off_w_done) < 0) {
        goto failed;
    }
    rc = 1;
    if (state != NULL) {
        /* The delivery is over: no one reads worker.scope until the next
         * (current_event() looks at worker.event first), and its span and
         * context may serve that one, where no one else holds them. */
        slot_set(worker, off_w_scope, Py_None);
        span_over(state, scope);
        state = NULL;
        scope = NULL;
    }
    goto done;
failed:
    slot_set(worker, off_w_event, item); /* for the Python loop to count it lost */
done:
    Py_XDECREF(observer);
    span_drop(state);
    Py_XDECREF(scope);
    Py_XDECREF(elapsed);
    Py_XDECREF(type);
    Py_XDECREF(error);
    Py_XDECREF(traceback);
    return rc;
}

PyObject *
drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "drain(get, worker, failed, finished) takes 4 arguments");
        return NULL;
    }
    PyObject *get = args[0], *worker = args[1], *failed = args[2], *finished = args[3];
    if (Worker_type == NULL || !Py_IS_TYPE(worker, Worker_type)) {
        return PyObject_CallNoArgs(get); /* not configured for it: the Python loop runs all */
    }
    PyObject *none[1] = {NULL}; /* get's argument parser takes its fast path with an array */
    for (;;) {
        PyObject *item = PyObject_Vectorcall(get, none + 1, 0, NULL);
        if (item == NULL || !runnable(item)) {
            return item;
        }
        int rc = run_item(worker, item, failed, finished);
        if (rc == 2) {
            return item; /* a call not started: the Python loop runs it */
        }
        Py_DECREF(item);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            Py_RETURN_FALSE;
        }
    }
}
