/* Commands: the caller's side (see _speedups.c).
 *
 *   ExecuteCommand  BusCore.execute_command as a method descriptor: a call
 *                   to a local mailbox that takes it now (open, not full,
 *                   no hold on it), its arguments bound by the handler's
 *                   positional signature (or, with keywords, by the
 *                   binder's check, as in Python); on an observed bus the
 *                   observer's call_sent makes its ticket, as in Python.
 *                   Anything else calls the Python function, before
 *                   anything was done: a bus closing, a name not
 *                   registered here, positional arguments the quick check
 *                   does not accept, a remote, full, closed or held
 *                   mailbox.
 *   FutureResult    CommandFuture.result as a method descriptor: the wait
 *                   for a result without a timeout, from a thread that is
 *                   not the bus's (no deadlock to look for), and the value
 *                   of a future that has one. A timeout, a service thread,
 *                   a cancelled future or a raised exception: Python.
 */
#include "_speedups.h"

static PyTypeObject *Binder_type;
static Py_ssize_t off_h_binder, off_b_fast, off_b_min, off_b_max, off_b_signature;
static PyObject *workers; /* _worker.workers: thread id -> Worker */
static PyObject *s_commands, *s_call_sent, *s_check, *no_args;

/* -- the future ------------------------------------------------------------------- */

/* CommandFuture(handler, waits), without running __init__'s Python code: the
 * same slots set to the same values (tests/bus/core/test_accel_calls.py
 * compares the two). A new reference, or NULL on error. */
static PyObject *
make_future(PyObject *handler, PyObject *waits)
{
    PyObject *lock = PyObject_CallNoArgs(allocate_lock);
    PyObject *settled = lock == NULL ? NULL : PyObject_CallNoArgs(allocate_lock);
    PyObject *future = NULL;
    int taken = settled == NULL ? -1 : try_lock(settled);
    if (taken != 1) {
        if (taken == 0) {
            PyErr_SetString(PyExc_RuntimeError, "a lock just made was taken");
        }
        goto done;
    }
    /* object.__new__: the instance and its (empty) attribute storage */
    future = Future_type->tp_new(Future_type, no_args, NULL);
    if (future == NULL) {
        goto done;
    }
    slot_set(future, off_f_lock, lock);
    slot_set(future, off_f_state, st_pending);
    slot_set(future, off_f_result, Py_None);
    slot_set(future, off_f_exception, Py_None);
    slot_set(future, off_f_made, Py_None);
    slot_set(future, off_f_waiter_list, no_args);
    slot_set(future, off_f_callbacks, no_args);
    slot_set(future, off_f_handler, handler);
    slot_set(future, off_f_waits, waits);
    slot_set(future, off_f_gave_up, Py_False);
    slot_set(future, off_f_settled, settled);
done:
    Py_XDECREF(lock);
    Py_XDECREF(settled);
    return future;
}

/* -- execute_command ---------------------------------------------------------------- */

/* The handler of command name registered in this process, of an open bus;
 * NULL (maybe with an error) otherwise. Borrowed: the router's commands dict
 * holds it. */
static PyObject *
local_handler(Wrapper *self, PyObject *bus, PyObject *name)
{
    PyObject *commands = routing_table(self, bus, s_commands, 0);
    if (commands == NULL) {
        return NULL;
    }
    PyObject *handler = PyDict_GetItemWithError(commands, name);
    return handler != NULL && Py_IS_TYPE(handler, Handler_type) ? handler : NULL;
}

/* Binder.check's first line: no keywords, a positional signature, and a
 * count of arguments it takes; or no signature to check. */
static int
binds(PyObject *handler, Py_ssize_t count)
{
    PyObject *binder = SLOT(handler, off_h_binder);
    if (binder == NULL || !Py_IS_TYPE(binder, Binder_type)) {
        return 0;
    }
    PyObject *fast = SLOT(binder, off_b_fast);
    PyObject *least = SLOT(binder, off_b_min);
    PyObject *most = SLOT(binder, off_b_max);
    if (fast == Py_True && least != NULL && most != NULL && PyLong_CheckExact(least) &&
        PyLong_CheckExact(most)) {
        Py_ssize_t lo = PyLong_AsSsize_t(least), hi = PyLong_AsSsize_t(most);
        if (lo == -1 || hi == -1) {
            PyErr_Clear();
            return 0;
        }
        return lo <= count && count <= hi;
    }
    return SLOT(binder, off_b_signature) == Py_None;
}

static PyObject *
execute_vectorcall(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2 || !PyUnicode_CheckExact(args[1]) || Future_type == NULL ||
        Binder_type == NULL) {
        goto slow;
    }
    int keyworded = kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0;
    PyObject *bus = args[0], *name = args[1];
    PyObject *handler = local_handler(self, bus, name);
    if (handler == NULL || (!keyworded && !binds(handler, nargs - 2))) {
        goto cleared;
    }
    PyObject *runtime = SLOT(handler, off_h_destination);
    PyObject *dispatched = SLOT(handler, off_h_dispatched);
    if (runtime == NULL || dispatched == NULL || !Py_IS_TYPE(runtime, Runtime_type)) {
        goto cleared;
    }
    /* Held: the router, and the bus, may let go of them while Python code runs. */
    PyObject *observer = Py_NewRef(self->seen.observer);
    PyObject *waits = Py_NewRef(self->seen.waits);
    Py_INCREF(handler);
    Py_INCREF(runtime);
    Lane *lane = lane_ready(handler, runtime, 1);
    PyObject *future = NULL, *call_args = NULL, *ticket = NULL, *item = NULL;
    if (lane == NULL) {
        Py_DECREF(observer);
        Py_DECREF(waits);
        Py_DECREF(handler);
        Py_DECREF(runtime);
        goto cleared;
    }
    PyObject *kwargs = NULL;
    if ((call_args = PyTuple_New(nargs - 2)) == NULL) {
        goto failed;
    }
    for (Py_ssize_t i = 2; i < nargs; i++) {
        PyTuple_SET_ITEM(call_args, i - 2, Py_NewRef(args[i]));
    }
    if (!keyworded) {
        kwargs = Py_NewRef(no_kwargs);
    }
    else {
        /* binder.check(args, kwargs), as execute_command does: its TypeError
         * is the Python code's, raised before anything was sent. */
        PyObject *binder = SLOT(handler, off_h_binder);
        kwargs = keywords(args + nargs, kwnames);
        PyObject *check[3] = {binder, call_args, kwargs};
        PyObject *checked =
            binder == NULL || kwargs == NULL
                ? NULL
                : PyObject_VectorcallMethod(s_check, check, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                            NULL);
        if (checked == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_AttributeError, "a handler without its binder");
            }
            goto failed;
        }
        Py_DECREF(checked);
    }
    /* From here on, as execute_command: a future, the observer told, counted,
     * posted (a mailbox that closed meanwhile fails it after the put). */
    if ((future = make_future(handler, waits)) == NULL) {
        goto failed;
    }
    if (observer == Py_None) {
        ticket = Py_NewRef(Py_None);
    }
    else {
        PyObject *sent[4] = {observer, handler, call_args, kwargs};
        ticket = PyObject_VectorcallMethod(s_call_sent, sent, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                           NULL);
    }
    /* Read again: call_sent ran Python code, which may have replaced it. */
    dispatched = SLOT(handler, off_h_dispatched);
    if (ticket == NULL || dispatched == NULL || count_next(dispatched) < 0 ||
        (item = PyTuple_New(5)) == NULL) {
        if (dispatched == NULL && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_AttributeError, "a handler without its dispatched count");
        }
        goto failed;
    }
    PyTuple_SET_ITEM(item, 0, Py_NewRef(handler));
    PyTuple_SET_ITEM(item, 1, Py_NewRef(call_args));
    PyTuple_SET_ITEM(item, 2, Py_NewRef(kwargs));
    PyTuple_SET_ITEM(item, 3, Py_NewRef(future));
    PyTuple_SET_ITEM(item, 4, Py_NewRef(ticket));
    if (lane_put(lane, runtime, item) < 0) {
        goto failed;
    }
    goto done;
failed:
    Py_CLEAR(future);
done:
    Py_XDECREF(item);
    Py_XDECREF(ticket);
    Py_XDECREF(kwargs);
    Py_XDECREF(call_args);
    Py_DECREF(lane);
    Py_DECREF(observer);
    Py_DECREF(waits);
    Py_DECREF(handler);
    Py_DECREF(runtime);
    return future;
cleared:
    if (PyErr_Occurred()) {
        /* Whatever went wrong is for the Python function to meet and report. */
        PyErr_Clear();
    }
slow:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
execute_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)execute_vectorcall);
}

PyTypeObject ExecuteCommand_Type = WRAPPER_TYPE(
    "ExecuteCommand",
    "BusCore.execute_command with its local call in C; the Python function is the fallback.",
    execute_new);

/* -- result ------------------------------------------------------------------------- */

/* Whether the calling thread is one of the bus's (a Worker in workers): -1 on error. */
static int
on_bus_thread(void)
{
    PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (ident == NULL) {
        return -1;
    }
    PyObject *worker = PyDict_GetItemWithError(workers, ident);
    Py_DECREF(ident);
    if (worker == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return worker != Py_None;
}

static PyObject *
result_vectorcall(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1 || nargs > 2 || (nargs == 2 && args[1] != Py_None) ||
        (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) || Future_type == NULL ||
        !Py_IS_TYPE(args[0], Future_type)) {
        goto slow;
    }
    PyObject *future = args[0];
    if (SLOT(future, off_f_state) != st_finished) {
        PyObject *state = SLOT(future, off_f_state);
        PyObject *settled = SLOT(future, off_f_settled);
        if (state == st_cancelled || state == st_notified || settled == NULL) {
            goto slow;
        }
        int bus_thread = on_bus_thread();
        if (bus_thread != 0) {
            if (bus_thread < 0) {
                return NULL;
            }
            goto slow; /* a wait there is checked for a deadlock first */
        }
        /* _settled is held until the future is done; acquire() lets go of
         * the GIL while it waits, and lets Ctrl-C through. */
        Py_INCREF(settled);
        PyObject *got = PyObject_Vectorcall(lock_acquire, &settled, 1, NULL);
        int rc = got == NULL ? -1 : unlock(settled); /* for the next caller waiting */
        Py_XDECREF(got);
        Py_DECREF(settled);
        if (rc < 0) {
            return NULL;
        }
        if (SLOT(future, off_f_state) != st_finished) {
            goto slow; /* cancelled meanwhile: Python raises CancelledError */
        }
    }
    PyObject *error = SLOT(future, off_f_exception);
    if (error == NULL || error != Py_None) {
        goto slow; /* Python raises it, with its traceback */
    }
    PyObject *result = SLOT(future, off_f_result);
    if (result == NULL) {
        goto slow;
    }
    return Py_NewRef(result);
slow:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
result_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)result_vectorcall);
}

PyTypeObject FutureResult_Type = WRAPPER_TYPE(
    "FutureResult",
    "CommandFuture.result with its plain wait in C; the Python method is the fallback.",
    result_new);

/* -- configure_caller() ------------------------------------------------------------- */

PyObject *
configure_caller(PyObject *module, PyObject *args)
{
    PyObject *binder, *registry;
    if (!PyArg_ParseTuple(args, "OO!:configure_caller", &binder, &PyDict_Type, &registry)) {
        return NULL;
    }
    if (Binder_type != NULL || Handler_type == NULL || Future_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "configure_caller: once, after configure() and configure_calls()");
        return NULL;
    }
    if (!PyType_Check(binder)) {
        PyErr_SetString(PyExc_TypeError, "configure_caller: the binder must be a class");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)binder;
    if (slot_offset(Handler_type, "binder", &off_h_binder) ||
        slot_offset(type, "_fast", &off_b_fast) || slot_offset(type, "_min", &off_b_min) ||
        slot_offset(type, "_max", &off_b_max) || slot_offset(type, "signature", &off_b_signature)) {
        return NULL;
    }
    if ((s_commands = PyUnicode_InternFromString("_commands")) == NULL ||
        (s_call_sent = PyUnicode_InternFromString("call_sent")) == NULL ||
        (s_check = PyUnicode_InternFromString("check")) == NULL ||
        (no_args = PyTuple_New(0)) == NULL) {
        return NULL;
    }
    workers = Py_NewRef(registry);
    Binder_type = (PyTypeObject *)Py_NewRef(binder);
    Py_RETURN_NONE;
}
