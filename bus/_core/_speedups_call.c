/* Commands: the service's side of a call (see _speedups.c).
 *
 * drain() runs a call as Runtime._serve_mailbox and run_call do, telling
 * the bus's observer what run_call tells it when the call has a ticket,
 * with CommandFuture's own state changes (set_running_or_notify_cancel,
 * set_result) made here when no one else is at the future: its lock is free,
 * and no Condition was made (so concurrent.futures.wait() and as_completed()
 * have no waiter on it) and no callback added. Anything else goes to the
 * Python code: a future not PENDING (cancelled) or whose lock is taken is
 * handed back before the handler runs, and a call that failed, or whose
 * caller gave up, ends in Runtime._call_finished. A traced call's hooks
 * are the hub's C ones called directly while they are the hub's (as
 * run_observed does for deliveries), its span made current through the
 * thread's kept entry (_speedups_scope.c).
 */
#include "_speedups.h"

PyTypeObject *Future_type, *lock_type;
Py_ssize_t off_f_lock, off_f_state, off_f_result, off_f_exception, off_f_made, off_f_waiter_list,
    off_f_callbacks, off_f_settled, off_f_gave_up, off_f_handler, off_f_waits;
Py_ssize_t off_w_future, off_w_runtime, off_w_scope, off_w_failed;
PyObject *s_bus, *s_call_started, *s_handler_returned, *s_call_ended, *s_delivery_started,
    *s_delivery_ended, *s_listener_failed, *s_finish;
PyObject *lock_acquire, *lock_release, *allocate_lock;
static PyObject *settle_fn, *invoke_callbacks;
PyObject *st_pending, *st_running, *st_finished, *st_cancelled, *st_notified;
static int lock_inline;

/* -- locks ---------------------------------------------------------------------------- */

/* _thread.lock as CPython 3.11 lays it out; used only if probe_lock agrees. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock_lock;
    PyObject *in_weakreflist;
    char locked;
} lock_layout;

/* lock.acquire(False): 1 if taken, 0 if not, -1 on error. */
int
try_lock(PyObject *lock)
{
    if (lock_inline && Py_IS_TYPE(lock, lock_type)) {
        lock_layout *l = (lock_layout *)lock;
        if (!PyThread_acquire_lock(l->lock_lock, NOWAIT_LOCK)) {
            return 0;
        }
        l->locked = 1;
        return 1;
    }
    PyObject *args[2] = {lock, Py_False};
    PyObject *got = PyObject_Vectorcall(lock_acquire, args, 2, NULL);
    if (got == NULL) {
        return -1;
    }
    int taken = got == Py_True;
    Py_DECREF(got);
    return taken;
}

/* lock.release() of a lock this thread took (or, for _settled, that is held). */
int
unlock(PyObject *lock)
{
    if (lock_inline && Py_IS_TYPE(lock, lock_type)) {
        lock_layout *l = (lock_layout *)lock;
        if (l->locked) {
            l->locked = 0;
            PyThread_release_lock(l->lock_lock);
            return 0;
        }
    }
    return call_discard(lock_release, &lock, 1);
}

/* Whether _thread.lock is laid out as lock_layout: probed on a live lock. */
static int
probe_lock(void)
{
    PyObject *lock = PyObject_CallNoArgs(allocate_lock);
    if (lock == NULL) {
        return -1;
    }
    lock_type = (PyTypeObject *)Py_NewRef(Py_TYPE(lock));
    lock_layout *l = (lock_layout *)lock;
    lock_inline = 0;
    if (lock_type->tp_basicsize == sizeof(lock_layout) && l->locked == 0) {
        PyObject *got = PyObject_CallMethod(lock, "acquire", "O", Py_False);
        if (got == NULL) {
            Py_DECREF(lock);
            return -1;
        }
        int held = got == Py_True && l->locked == 1;
        Py_DECREF(got);
        /* Released through its own method: our flag must then read 0. */
        PyObject *done = PyObject_CallMethod(lock, "release", NULL);
        if (done == NULL) {
            Py_DECREF(lock);
            return -1;
        }
        Py_DECREF(done);
        lock_inline = held && l->locked == 0;
    }
    Py_DECREF(lock);
    return 0;
}

/* -- the future's state ------------------------------------------------------------ */

/* set_running_or_notify_cancel() when the future is PENDING and its lock free:
 * 1 running, 0 for Python to do (cancelled, or another thread at the lock),
 * -1 on error. */
static int
start_future(PyObject *future)
{
    PyObject *lock = SLOT(future, off_f_lock);
    if (lock == NULL) {
        return 0;
    }
    int taken = try_lock(lock);
    if (taken <= 0) {
        return taken;
    }
    int pending = SLOT(future, off_f_state) == st_pending;
    if (pending) {
        slot_set(future, off_f_state, st_running);
    }
    return unlock(lock) < 0 ? -1 : pending;
}

/* set_result(result) as settle() does it (a future already ended is left as
 * it is); in Python when a waiter, a Condition or a callback is involved. */
static int
complete_future(PyObject *future, PyObject *result)
{
    PyObject *lock = SLOT(future, off_f_lock);
    PyObject *settled = SLOT(future, off_f_settled);
    int taken = lock != NULL && settled != NULL && SLOT(future, off_f_made) == Py_None
                    ? try_lock(lock)
                    : 0;
    if (taken < 0) {
        return -1;
    }
    /* _made is read again under the lock: whoever makes the Condition takes
     * this lock before it adds a waiter. */
    if (taken && SLOT(future, off_f_made) != Py_None) {
        if (unlock(lock) < 0) {
            return -1;
        }
        taken = 0;
    }
    if (!taken) {
        PyObject *args[3] = {future, result, Py_None};
        return call_discard(settle_fn, args, 3);
    }
    PyObject *state = SLOT(future, off_f_state);
    if (state == st_finished || state == st_cancelled || state == st_notified) {
        return unlock(lock); /* close() failed it first: settle() returns False */
    }
    slot_set(future, off_f_result, result);
    slot_set(future, off_f_state, st_finished);
    if (unlock(lock) < 0 || unlock(settled) < 0) {
        return -1;
    }
    PyObject *callbacks = SLOT(future, off_f_callbacks);
    if (callbacks != NULL && PyList_CheckExact(callbacks) && PyList_GET_SIZE(callbacks) > 0) {
        return call_discard(invoke_callbacks, &future, 1);
    }
    return 0;
}

/* -- drain's part ------------------------------------------------------------------- */

int
call_runnable(PyObject *item)
{
    PyObject *future = PyTuple_GET_ITEM(item, 3);
    return Future_type != NULL && Py_IS_TYPE(future, Future_type) &&
           SLOT(future, off_f_gave_up) != NULL;
}

/* observer.method(*args), its result discarded: 0, or -1 on error. */
static int
tell(PyObject *observer, PyObject *method, PyObject **args, size_t nargs)
{
    args[0] = observer;
    PyObject *result =
        PyObject_VectorcallMethod(method, args, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

int
start_run(PyObject *worker, PyObject *handler, PyObject *future, PyObject *observer,
          PyObject *started, PyObject *ticket, double *start, PyObject **scope)
{
    PyObject *since = mark_start(worker, start);
    if (since == NULL) {
        return -1;
    }
    Py_DECREF(since);
    slot_set(worker, off_w_current, handler);
    if (future != NULL) {
        slot_set(worker, off_w_future, future);
    }
    if (observer == Py_None) {
        *scope = Py_NewRef(Py_None);
        return 0;
    }
    PyObject *args[3] = {observer, ticket, worker};
    *scope = PyObject_VectorcallMethod(started, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    return *scope == NULL ? -1 : 0;
}

/* worker.runtime.bus.observer, each read kept while the __dict__ it came
 * from is unchanged. */
static AttrCache buses_seen, observers_seen;

PyObject *
observer_of(PyObject *worker)
{
    PyObject *runtime = SLOT(worker, off_w_runtime);
    if (runtime == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a worker without its runtime");
        return NULL;
    }
    PyObject *bus = attr_seen(runtime, s_bus, &buses_seen);
    if (bus == NULL) {
        return NULL;
    }
    PyObject *observer = attr_seen(bus, s_observer, &observers_seen);
    Py_DECREF(bus);
    return observer;
}

int
run_call(PyObject *worker, PyObject *item, PyObject *finished, PyObject *handler,
         PyObject *stats, PyObject *fn)
{
    PyObject *future = PyTuple_GET_ITEM(item, 3);
    PyObject *ticket = PyTuple_GET_ITEM(item, 4);
    int started = start_future(future);
    if (started <= 0) {
        return started < 0 ? -1 : 2; /* 2: not started, for the Python loop */
    }
    PyObject *args = PyTuple_GET_ITEM(item, 1);
    PyObject *kwargs = PyTuple_GET_ITEM(item, 2);
    PyObject *observer = ticket == Py_None ? Py_NewRef(Py_None) : observer_of(worker);
    PyObject *scope = NULL, *result = NULL, *elapsed = NULL;
    PyObject *type = NULL, *error = NULL, *traceback = NULL;
    Entered *state = NULL; /* the thread's kept span and context, in use */
    int hooks_held = 0;    /* the C hooks were the hub's as the handler returned */
    int rc = -1;
    if (observer == NULL) {
        goto done;
    }
    /* The hub's own C hooks, called without looking them up by name. */
    int direct = observer == Py_None ? 0 : call_hooks_ours(observer);
    if (direct < 0) {
        goto done;
    }
    /* A bus error from here on leaves worker.future for the Python loop to fail. */
    double start;
    if (direct) {
        PyObject *since = mark_start(worker, &start);
        if (since == NULL) {
            goto done;
        }
        Py_DECREF(since);
        slot_set(worker, off_w_current, handler);
        slot_set(worker, off_w_future, future);
        direct = call_begin(ticket, worker, &state, &scope);
        if (direct < 0) {
            goto done;
        }
        if (direct == 0) {
            /* not a CallRecord: the hook as Python looks it up */
            PyObject *call[3] = {observer, ticket, worker};
            scope = PyObject_VectorcallMethod(s_call_started, call,
                                              3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (scope == NULL) {
                goto done;
            }
        }
    }
    else if (start_run(worker, handler, future, observer, s_call_started, ticket, &start,
                       &scope) < 0) {
        goto done;
    }
    result = PyObject_Call(fn, args, PyDict_GET_SIZE(kwargs) ? kwargs : NULL);
    if (result == NULL) {
        take_error(&type, &error, &traceback);
        result = Py_NewRef(Py_None);
    }
    if (observer != Py_None) {
        int left = span_left_after(observer, direct, call_hooks_ours, scope, 2, &state);
        hooks_held = left == 1;
        if (left == 0) {
            PyObject *returned[2] = {NULL, scope};
            left = tell(observer, s_handler_returned, returned, 2) < 0 ? -1 : 1;
        }
        if (left < 0) {
            goto done; /* raised in run_call's finally: it replaces the handler's */
        }
    }
    elapsed = PyFloat_FromDouble(perf_counter() - start);
    if (elapsed == NULL) {
        goto done;
    }
    slot_set(worker, off_w_current, Py_None);
    slot_set(worker, off_w_future, Py_None);
    if (error != NULL || SLOT(future, off_f_gave_up) != Py_False) {
        /* Runtime._call_finished: finish_call (stats.finish, the late reply,
         * the observer, settle), then the counts */
        PyObject *call[9] = {worker, handler, future, result, error ? error : Py_None,
                             elapsed, observer, ticket, scope};
        PyObject *go_on = PyObject_Vectorcall(finished, call, 9, NULL);
        if (go_on != NULL) {
            rc = PyObject_IsTrue(go_on);
            Py_DECREF(go_on);
        }
        goto done;
    }
    /* finish_call: stats.finish(elapsed, None) for unshared stats, the
     * observer, then settle() */
    PyObject *append[2] = {SLOT(stats, off_s_latencies), elapsed};
    if (slot_increment(stats, off_s_calls) < 0 || call_discard(deque_append, append, 2) < 0) {
        goto failed;
    }
    if (observer != Py_None) {
        PyObject *ended[8] = {observer, ticket, scope, handler, worker, Py_None, elapsed, result};
        /* No Python code ran since the hooks were last read where they held. */
        int finished = hooks_held ? call_finish(ended) : 0;
        if (finished < 0 || (finished == 0 && tell(observer, s_call_ended, ended, 8) < 0)) {
            goto failed;
        }
    }
    if (complete_future(future, result) < 0 || slot_increment(worker, off_w_handled) < 0 ||
        slot_increment(worker, off_w_done) < 0) {
        goto failed;
    }
    rc = 1;
    if (state != NULL) {
        /* The call is over: its span and context may serve the next one on
         * this thread, where no one else holds them. */
        span_over(state, scope);
        state = NULL;
        scope = NULL;
    }
    goto done;
failed:
    /* A bus error: the Python loop fails the future it finds here. */
    slot_set(worker, off_w_future, future);
done:
    Py_XDECREF(observer);
    span_drop(state);
    Py_XDECREF(scope);
    Py_XDECREF(result);
    Py_XDECREF(elapsed);
    Py_XDECREF(type);
    Py_XDECREF(error);
    Py_XDECREF(traceback);
    return rc;
}

/* -- configure_calls() -------------------------------------------------------------- */

PyObject *
configure_calls(PyObject *module, PyObject *args)
{
    PyObject *future, *allocate, *settle, *worker;
    if (!PyArg_ParseTuple(args, "OOOO(OOOOO):configure_calls", &future, &allocate, &settle, &worker,
                          &st_pending, &st_running, &st_finished, &st_cancelled, &st_notified)) {
        return NULL;
    }
    if (Future_type != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_calls: already configured");
        return NULL;
    }
    if (!PyType_Check(future) || !PyType_Check(worker)) {
        PyErr_SetString(PyExc_TypeError, "configure_calls: the future and worker must be classes");
        return NULL;
    }
    Py_INCREF(st_pending);
    Py_INCREF(st_running);
    Py_INCREF(st_finished);
    Py_INCREF(st_cancelled);
    Py_INCREF(st_notified);
    settle_fn = Py_NewRef(settle);
    allocate_lock = Py_NewRef(allocate);
    PyTypeObject *type = (PyTypeObject *)future;
    if (slot_offset(type, "_lock", &off_f_lock) || slot_offset(type, "_state", &off_f_state) ||
        slot_offset(type, "_result", &off_f_result) || slot_offset(type, "_made", &off_f_made) ||
        slot_offset(type, "_exception", &off_f_exception) ||
        slot_offset(type, "_waiter_list", &off_f_waiter_list) ||
        slot_offset(type, "_handler", &off_f_handler) ||
        slot_offset(type, "_waits", &off_f_waits) ||
        slot_offset(type, "_done_callbacks", &off_f_callbacks) ||
        slot_offset(type, "_settled", &off_f_settled) ||
        slot_offset(type, "gave_up", &off_f_gave_up) ||
        slot_offset((PyTypeObject *)worker, "future", &off_w_future) ||
        slot_offset((PyTypeObject *)worker, "runtime", &off_w_runtime) ||
        slot_offset((PyTypeObject *)worker, "scope", &off_w_scope) ||
        slot_offset((PyTypeObject *)worker, "failed", &off_w_failed)) {
        return NULL;
    }
    if ((s_bus = PyUnicode_InternFromString("bus")) == NULL ||
        (s_call_started = PyUnicode_InternFromString("call_started")) == NULL ||
        (s_handler_returned = PyUnicode_InternFromString("handler_returned")) == NULL ||
        (s_call_ended = PyUnicode_InternFromString("call_ended")) == NULL ||
        (s_delivery_started = PyUnicode_InternFromString("delivery_started")) == NULL ||
        (s_delivery_ended = PyUnicode_InternFromString("delivery_ended")) == NULL ||
        (s_listener_failed = PyUnicode_InternFromString("listener_failed")) == NULL ||
        (s_finish = PyUnicode_InternFromString("finish")) == NULL) {
        return NULL;
    }
    if (probe_lock() < 0 ||
        (lock_acquire = PyObject_GetAttrString((PyObject *)lock_type, "acquire")) == NULL ||
        (lock_release = PyObject_GetAttrString((PyObject *)lock_type, "release")) == NULL ||
        (invoke_callbacks = PyObject_GetAttrString(future, "_invoke_callbacks")) == NULL) {
        return NULL;
    }
    Future_type = (PyTypeObject *)Py_NewRef(future);
    Py_RETURN_NONE;
}
