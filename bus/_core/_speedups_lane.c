/* The firing side's mailboxes: Runtime.post inlined, and one delivery of the
 * fan-out (see _speedups.c). */
#include "_speedups.h"

static int
lane_traverse(Lane *self, visitproc visit, void *arg)
{
    Py_VISIT(self->dict);
    Py_VISIT(self->queue);
    Py_VISIT(self->posted);
    Py_VISIT(self->maxsize);
    return 0;
}

static int
lane_clear(Lane *self)
{
    self->tag = TAG_UNKNOWN;
    self->after = NULL;
    Py_CLEAR(self->dict);
    Py_CLEAR(self->queue);
    Py_CLEAR(self->posted);
    Py_CLEAR(self->maxsize);
    return 0;
}

static void
lane_dealloc(Lane *self)
{
    PyObject_GC_UnTrack(self);
    lane_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyTypeObject Lane_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bus._core._speedups.Lane",
    .tp_doc = "What the accelerator keeps of a handler's local mailbox.",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)lane_dealloc,
    .tp_traverse = (traverseproc)lane_traverse,
    .tp_clear = (inquiry)lane_clear,
};

static Lane *
lane_of(PyObject *handler, PyObject *runtime)
{
    PyObject *lane = SLOT(handler, off_h_lane);
    if (lane != NULL && Py_IS_TYPE(lane, &Lane_Type) && ((Lane *)lane)->dict != NULL) {
        return (Lane *)lane;
    }
    PyObject *dict = PyObject_GenericGetDict(runtime, NULL);
    if (dict == NULL) {
        return NULL;
    }
    PyObject *queue = PyDict_GetItemWithError(dict, s_queue);
    PyObject *posted = queue ? PyDict_GetItemWithError(dict, s_posted) : NULL;
    PyObject *maxsize = posted ? PyDict_GetItemWithError(dict, s_maxsize) : NULL;
    if (maxsize == NULL || !PyLong_CheckExact(maxsize)) {
        Py_DECREF(dict);
        return NULL; /* not a mailbox as _mailbox makes them: post() */
    }
    Lane *made = PyObject_GC_New(Lane, &Lane_Type);
    if (made == NULL) {
        Py_DECREF(dict);
        return NULL;
    }
    made->dict = dict;
    made->queue = Py_NewRef(queue);
    made->posted = Py_NewRef(posted);
    made->maxsize = Py_NewRef(maxsize);
    int overflow;
    long long bound = PyLong_AsLongLongAndOverflow(maxsize, &overflow);
    made->bound = overflow > 0 || bound > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX
                  : overflow < 0 || bound < 0      ? 0
                                                   : (Py_ssize_t)bound;
    made->tag = TAG_UNKNOWN;
    made->accepting = 0;
    made->after = NULL;
    PyObject_GC_Track(made);
    slot_set(handler, off_h_lane, (PyObject *)made);
    Py_DECREF(made);
    return made;
}

/* Read accepting and _after_post again unless the runtime's __dict__ is
 * unchanged since they were read. 0, or -1 on error. */
static int
lane_refresh(Lane *lane)
{
    uint64_t tag = DICT_TAG(lane->dict);
    if (tag != TAG_UNKNOWN && tag == lane->tag) {
        return 0;
    }
    lane->tag = TAG_UNKNOWN;
    PyObject *accepting = PyDict_GetItemWithError(lane->dict, s_accepting);
    if (accepting == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        lane->accepting = 0; /* not there: post() decides */
        lane->after = NULL;
        return 0;
    }
    int truth = PyObject_IsTrue(accepting);
    if (truth < 0) {
        return -1;
    }
    PyObject *after = PyDict_GetItemWithError(lane->dict, s_after_post);
    if (after == NULL && PyErr_Occurred()) {
        return -1;
    }
    lane->accepting = truth;
    lane->after = after;
    /* PyObject_IsTrue may have run Python code that changed the dict: the
     * tag read first then no longer matches, and the next event reads again. */
    lane->tag = tag;
    return 0;
}

/* The lane of a local mailbox that takes an item now: accepting, not full, and
 * (for a call) not gated by a hold, which replaces the runtime's post. A new
 * reference; NULL (maybe with an error) when post() must decide. */
Lane *
lane_ready(PyObject *handler, PyObject *runtime, int call)
{
    Lane *lane = lane_of(handler, runtime);
    if (lane == NULL) {
        return NULL;
    }
    Py_INCREF(lane); /* handler.lane may change while Python code runs below */
    if (lane_refresh(lane) < 0 || !lane->accepting) {
        goto refused;
    }
    if (call) {
        /* fire_event changes itself while a hold is set; execute_command does
         * not, so a call looks for the hold's post on the runtime. */
        PyObject *post = PyDict_GetItemWithError(lane->dict, s_post);
        if (post != NULL || PyErr_Occurred()) {
            goto refused;
        }
    }
    Py_ssize_t size = queue_size(lane->queue);
    if (size >= 0 && size < lane->bound) {
        return lane;
    }
refused:
    Py_DECREF(lane);
    return NULL;
}

/* The rest of Runtime.post, once lane_ready said yes: count, put, then read
 * accepting and _after_post again, as post() does. 0, or -1 on error. */
int
lane_put(Lane *lane, PyObject *runtime, PyObject *item)
{
    PyObject *put_args[2] = {lane->queue, item};
    if (count_next(lane->posted) < 0 || call_discard(queue_put, put_args, 2) < 0 ||
        lane_refresh(lane) < 0) {
        return -1;
    }
    if (!lane->accepting) {
        PyObject *result = PyObject_CallMethodNoArgs(runtime, s_fail_queued);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
    }
    else if (lane->after != NULL && lane->after != Py_None) {
        PyObject *after = Py_NewRef(lane->after);
        int failed = call_discard(after, NULL, 0);
        Py_DECREF(after);
        if (failed) {
            return -1;
        }
    }
    return 0;
}

/* Runtime.post inlined for a local mailbox, as BusCore.fire_event does:
 * 1 when queued, 0 when the mailbox is full or closed (post() decides), -1 on error. */
static int
post_local(PyObject *handler, PyObject *runtime, PyObject *item)
{
    Lane *lane = lane_ready(handler, runtime, 0);
    if (lane == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int rc = lane_put(lane, runtime, item) < 0 ? -1 : 1;
    Py_DECREF(lane);
    return rc;
}

/* One delivery of the fan-out: fire_event's loop body, with the ticket the
 * observer made for it (None, and observer NULL, when unobserved). 0, or -1
 * on error. */
int
deliver(PyObject *bus, PyObject *handler, PyObject *args, PyObject *kwargs, PyObject *name,
        PyObject *observer, PyObject *ticket)
{
    PyObject *dispatched, *runtime;
    int exact = Py_IS_TYPE(handler, Handler_type) && SLOT(handler, off_h_dispatched) != NULL &&
                SLOT(handler, off_h_destination) != NULL;
    if (exact) {
        dispatched = Py_NewRef(SLOT(handler, off_h_dispatched));
        runtime = Py_NewRef(SLOT(handler, off_h_destination));
    }
    else {
        if ((dispatched = PyObject_GetAttrString(handler, "dispatched")) == NULL) {
            return -1;
        }
        if ((runtime = PyObject_GetAttrString(handler, "destination")) == NULL) {
            Py_DECREF(dispatched);
            return -1;
        }
    }
    int rc = -1;
    PyObject *item = NULL, *status = NULL;
    if (count_next(dispatched) < 0) {
        goto done;
    }
    item = PyTuple_New(5);
    if (item == NULL) {
        goto done;
    }
    PyTuple_SET_ITEM(item, 0, Py_NewRef(handler));
    PyTuple_SET_ITEM(item, 1, Py_NewRef(args));
    PyTuple_SET_ITEM(item, 2, Py_NewRef(kwargs));
    PyTuple_SET_ITEM(item, 3, Py_NewRef(name));
    PyTuple_SET_ITEM(item, 4, Py_NewRef(ticket));
    /* The collector need not follow a queued item: it is in a cycle only
     * through its mailbox (runtime, queue, item, handler, runtime), and
     * leaves it when taken, or at close. Followed, every queued event
     * outlives a young collection and brings the next full one closer: with
     * a deep mailbox, those cost more than the delivery. */
    if (ticket == Py_None || PyLong_CheckExact(ticket)) {
        PyObject_GC_UnTrack(item); /* a ticket's tuple is the observer's to track; a head is no container */
    }
    if (exact && Py_IS_TYPE(runtime, Runtime_type)) {
        int queued = post_local(handler, runtime, item);
        if (queued < 0) {
            goto done;
        }
        if (queued) {
            rc = 0;
            goto done;
        }
    }
    /* any other destination, or a full or closed mailbox: post() decides */
    if ((status = PyObject_CallMethodOneArg(runtime, s_post, item)) == NULL) {
        goto done;
    }
    int refused = PyObject_IsTrue(status);
    if (refused < 0) {
        goto done;
    }
    if (refused) {
        PyObject *call[4] = {bus, name, handler, status};
        PyObject *error = PyObject_VectorcallMethod(
            s_not_delivered, call, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (error == NULL) {
            goto done;
        }
        if (ticket != Py_None && observer != NULL) {
            PyObject *told[4] = {observer, ticket, handler, error};
            PyObject *done = PyObject_VectorcallMethod(
                s_delivery_refused, told, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (done == NULL) {
                Py_DECREF(error);
                goto done;
            }
            Py_DECREF(done);
        }
        Py_DECREF(error);
    }
    rc = 0;
done:
    Py_DECREF(dispatched);
    Py_DECREF(runtime);
    Py_XDECREF(item);
    Py_XDECREF(status);
    return rc;
}
