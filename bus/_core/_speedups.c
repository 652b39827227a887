/* The optional C accelerator of untraced event delivery (bus._core._accel).
 *
 * Two loops of the hot path, with exactly the semantics of their Python
 * reference code, which stays the fallback and the definition:
 *
 *   FireEvent  BusCore.fire_event as a method descriptor: the untraced
 *              fan-out (route cache, counted dispatch, the bounded-mailbox
 *              check, the put). Anything unusual (keyword arguments, a bus
 *              closing, observed or with a transport, a name not in the route
 *              cache) calls the Python function it wraps, untouched; a
 *              destination that is not a local mailbox, or a full or closed
 *              one, goes through its own post() and the bus's refusal path.
 *   drain      a one-thread service's mailbox loop: it runs unobserved event
 *              deliveries itself and returns any other item to the Python
 *              loop (Runtime._serve_mailbox), which runs it as before.
 *
 * Slotted attributes (Handler, HandlerStats, Worker) are read and written at
 * the offsets their member descriptors give, for exactly those classes
 * (configure() receives them); the state of a bus, its router and a runtime
 * is read from their __dict__s, again only when the dict changed (PEP 509
 * version tags, CPython 3.11); every write the Python code makes is made, in
 * the same order. Where this code relies on a layout CPython does not
 * promise (itertools.count, SimpleQueue), configure() probes it first and
 * falls back to their methods. A queued item is left out of the cyclic
 * garbage collector (see deliver()).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* -- what configure() is given and works out --------------------------------- */

static PyTypeObject *Runtime_type, *Handler_type, *Stats_type, *Worker_type;
static PyObject *queue_qsize, *queue_put; /* SimpleQueue's method descriptors */
static PyObject *deque_append;
static PyObject *one;
static PyObject *no_kwargs; /* the kwargs of every event fired without */
static Py_ssize_t off_h_dispatched, off_h_destination, off_h_fn, off_h_stats, off_h_lane;
static PyTypeObject *checked_bus_type; /* a bus class whose instances keep these in __dict__ */
static Py_ssize_t off_s_calls, off_s_latencies;
static Py_ssize_t off_w_event, off_w_since, off_w_current, off_w_handled, off_w_done;

static PyObject *s_closing, *s_router, *s_routes, *s_observer, *s_outlet, *s_accepting,
    *s_queue, *s_maxsize, *s_posted, *s_after_post, *s_fail_queued, *s_post, *s_not_delivered;

/* itertools.count and queue.SimpleQueue as CPython 3.11 lays them out. Each
 * layout is used only after configure() has probed it on a live object (see
 * probe_layouts); where it differs, their methods are called instead. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t cnt; /* the next value, while long_cnt is NULL */
    PyObject *long_cnt;
    PyObject *long_step;
} count_layout;

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    int locked;
    PyObject *lst;
    Py_ssize_t lst_pos; /* items before it were taken */
    PyObject *weakreflist;
} queue_layout;

static PyTypeObject *count_type, *queue_type;
static int count_inline, queue_inline;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static inline void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

static int
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

static double
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
        c->cnt++; /* as advance() would; next() must then give 42 */
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
static Py_ssize_t
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

/* -- the firing side ------------------------------------------------------------ */

/* 1 true, 0 false, -1 error: the truth of obj.name. */
static int
attr_true(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* 1 when obj.name is None, 0 when not, -1 on error. */
static int
attr_none(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    int none = value == Py_None;
    Py_DECREF(value);
    return none;
}

static int
call_discard(PyObject *callable, PyObject *const *args, size_t nargs)
{
    PyObject *result = PyObject_Vectorcall(callable, args, nargs, NULL);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static int
advance(PyObject *counter)
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

/* A dict's version: CPython 3.11 gives every dict a new tag whenever it
 * changes (PEP 509), unique across dicts, so an unchanged (dict, tag) pair
 * means that what was read from that dict still holds. Later versions drop
 * the tag: every read is then made afresh. */
#if PY_VERSION_HEX < 0x030C0000
#define DICT_TAG(dict) (((PyDictObject *)(dict))->ma_version_tag)
#else
#define DICT_TAG(dict) ((uint64_t)0)
#endif
#define TAG_UNKNOWN ((uint64_t)0) /* never a tag of a live dict */

/* What a handler's local mailbox keeps for as long as the handler lives, made
 * on its first event and kept in Handler.lane: its runtime's __dict__, _queue,
 * _posted and maxsize, which never change, and what was last read of
 * accepting and _after_post, which do, with the tag of the __dict__ then. */
typedef struct {
    PyObject_HEAD
    PyObject *dict;
    PyObject *queue;
    PyObject *posted;
    PyObject *maxsize;
    Py_ssize_t bound; /* maxsize; PY_SSIZE_T_MAX when it is larger */
    uint64_t tag;
    int accepting;
    PyObject *after; /* borrowed from dict, valid while tag holds */
} Lane;

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

static PyTypeObject Lane_Type = {
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

/* Runtime.post inlined for a local mailbox, as BusCore.fire_event does:
 * 1 when queued, 0 when the mailbox is full or closed (post() decides), -1 on error. */
static int
post_local(PyObject *handler, PyObject *runtime, PyObject *item)
{
    Lane *lane = lane_of(handler, runtime);
    if (lane == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(lane); /* handler.lane may change while Python code runs below */
    int rc = -1;
    if (lane_refresh(lane) < 0) {
        goto done;
    }
    rc = 0;
    if (!lane->accepting) {
        goto done;
    }
    PyObject *queue = lane->queue;
    Py_ssize_t size = queue_size(queue);
    if (size < 0 || size >= lane->bound) {
        rc = size < 0 && PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    rc = -1;
    PyObject *put_args[2] = {queue, item};
    if (advance(lane->posted) < 0 || call_discard(queue_put, put_args, 2) < 0) {
        goto done;
    }
    /* Read again after the put, as post() does. */
    if (lane_refresh(lane) < 0) {
        goto done;
    }
    if (!lane->accepting) {
        PyObject *result = PyObject_CallMethodNoArgs(runtime, s_fail_queued);
        if (result == NULL) {
            goto done;
        }
        Py_DECREF(result);
    }
    else if (lane->after != NULL && lane->after != Py_None) {
        PyObject *after = Py_NewRef(lane->after);
        int failed = call_discard(after, NULL, 0);
        Py_DECREF(after);
        if (failed) {
            goto done;
        }
    }
    rc = 1;
done:
    Py_DECREF(lane);
    return rc;
}

/* One delivery of the fan-out: fire_event's loop body. 0, or -1 on error. */
static int
deliver(PyObject *bus, PyObject *handler, PyObject *args, PyObject *kwargs, PyObject *name)
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
    if (advance(dispatched) < 0) {
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
    PyTuple_SET_ITEM(item, 4, Py_NewRef(Py_None));
    /* The collector need not follow a queued item: it is in a cycle only
     * through its mailbox (runtime, queue, item, handler, runtime), and
     * leaves it when taken, or at close. Followed, every queued event
     * outlives a young collection and brings the next full one closer: with
     * a deep mailbox, those cost more than the delivery. */
    PyObject_GC_UnTrack(item);
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

/* What the last fire_event read, each with the dict it came from and that
 * dict's tag: the same dict, unchanged, gives the same answer. The dicts are
 * compared by address and tag only (a new dict never reuses a tag), and what
 * is kept from them is borrowed: it is alive while its dict holds it. */
typedef struct {
    PyObject *bus_dict;    /* the bus's __dict__ ... */
    uint64_t bus_tag;
    PyObject *router;      /* ... held an open, unobserved bus's router */
    PyObject *router_dict; /* the router's __dict__ ... */
    uint64_t router_tag;
    PyObject *routes;      /* ... held this route cache */
    uint64_t routes_tag;
    PyObject *name;        /* a strong reference: compared by address */
    PyObject *listeners;   /* routes[name] */
} Seen;

typedef struct {
    PyObject_HEAD
    PyObject *fallback; /* the Python function: the reference, and the slow path */
    PyObject *dict;     /* __doc__, __wrapped__ and friends, for inspect */
    vectorcallfunc vectorcall;
    Seen seen;
} FireEvent;

/* Whether instances of this bus class keep what fire_event reads in their
 * __dict__, unshadowed by the class (checked once per class). */
static int
plain_bus_type(PyTypeObject *type)
{
    if (type == checked_bus_type) {
        return 1;
    }
    PyObject *own[] = {s_closing, s_router, s_observer, s_outlet, NULL};
    for (PyObject **name = own; *name != NULL; name++) {
        int has = PyObject_HasAttr((PyObject *)type, *name);
        if (has) {
            return 0;
        }
    }
    Py_INCREF(type);
    Py_XSETREF(checked_bus_type, type);
    return 1;
}

/* The value of key in an instance's __dict__: borrowed, or NULL (maybe with an error). */
static PyObject *
dict_get(PyObject *dict, PyObject *key)
{
    return dict == NULL ? NULL : PyDict_GetItemWithError(dict, key);
}

/* The router of an open, unobserved bus without a transport, or NULL (maybe
 * with an error) when the Python function must take the call. Borrowed. */
static PyObject *
open_router(Seen *seen, PyObject *bus)
{
    PyObject *dict = PyObject_GenericGetDict(bus, NULL);
    if (dict == NULL) {
        return NULL;
    }
    uint64_t tag = DICT_TAG(dict);
    PyObject *router = NULL;
    if (tag != TAG_UNKNOWN && dict == seen->bus_dict && tag == seen->bus_tag) {
        router = seen->router;
    }
    else {
        seen->bus_dict = NULL;
        PyObject *closing = dict_get(dict, s_closing);
        if (closing == Py_False && dict_get(dict, s_observer) == Py_None &&
            dict_get(dict, s_outlet) == Py_None) {
            router = dict_get(dict, s_router);
        }
        if (router != NULL) { /* no Python code ran since the tag was read */
            seen->bus_dict = dict;
            seen->bus_tag = tag;
            seen->router = router;
        }
    }
    Py_DECREF(dict); /* the bus holds it, and it holds the router */
    return router;
}

/* The listeners of an untraced, unobserved event fired on a bus that is open,
 * or NULL (maybe with an error) when the Python function must take the call. */
static PyObject *
fast_listeners(FireEvent *self, PyObject *bus, PyObject *name)
{
    if (!plain_bus_type(Py_TYPE(bus))) {
        return NULL;
    }
    Seen *seen = &self->seen;
    PyObject *router = open_router(seen, bus);
    if (router == NULL) {
        return NULL;
    }
    PyObject *router_dict = PyObject_GenericGetDict(router, NULL);
    if (router_dict == NULL) {
        return NULL;
    }
    uint64_t tag = DICT_TAG(router_dict);
    PyObject *routes;
    if (tag != TAG_UNKNOWN && router_dict == seen->router_dict && tag == seen->router_tag) {
        routes = seen->routes;
    }
    else {
        seen->router_dict = NULL;
        routes = dict_get(router_dict, s_routes);
        if (routes != NULL && PyDict_CheckExact(routes)) {
            seen->router_dict = router_dict;
            seen->router_tag = tag;
            seen->routes = routes;
            seen->routes_tag = TAG_UNKNOWN;
        }
        else {
            routes = NULL;
        }
    }
    Py_DECREF(router_dict); /* the router holds it */
    if (routes == NULL) {
        return NULL;
    }
    PyObject *listeners;
    tag = DICT_TAG(routes);
    if (tag != TAG_UNKNOWN && tag == seen->routes_tag && name == seen->name) {
        listeners = seen->listeners;
    }
    else {
        seen->routes_tag = TAG_UNKNOWN;
        listeners = PyDict_GetItemWithError(routes, name);
        if (listeners == NULL || !PyTuple_CheckExact(listeners)) {
            return NULL;
        }
        Py_INCREF(name);
        Py_XSETREF(seen->name, name);
        seen->listeners = listeners;
        seen->routes_tag = tag;
    }
    return Py_NewRef(listeners);
}

static PyObject *
fire_vectorcall(FireEvent *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) ||
        !PyUnicode_CheckExact(args[1])) {
        goto slow;
    }
    PyObject *bus = args[0], *name = args[1];
    PyObject *listeners = fast_listeners(self, bus, name);
    if (listeners == NULL) {
        /* Whatever went wrong is for the Python function to meet and report. */
        PyErr_Clear();
        goto slow;
    }
    PyObject *event_args = PyTuple_New(nargs - 2);
    /* No keyword arguments: every item shares one empty dict, never changed
     * (the delivery calls the listener without it; current_event() copies it). */
    PyObject *kwargs = Py_NewRef(no_kwargs);
    int rc = event_args == NULL || kwargs == NULL ? -1 : 0;
    int atoms = 1; /* no argument the collector follows */
    for (Py_ssize_t i = 2; rc == 0 && i < nargs; i++) {
        PyTuple_SET_ITEM(event_args, i - 2, Py_NewRef(args[i]));
        atoms = atoms && !PyObject_IS_GC(args[i]);
    }
    if (rc == 0 && atoms && nargs > 2) {
        /* What the collector does to such a tuple at its first pass, done
         * now: it cannot be in a cycle. */
        PyObject_GC_UnTrack(event_args);
    }
    for (Py_ssize_t i = 0; rc == 0 && i < PyTuple_GET_SIZE(listeners); i++) {
        rc = deliver(bus, PyTuple_GET_ITEM(listeners, i), event_args, kwargs, name);
    }
    Py_DECREF(listeners);
    Py_XDECREF(event_args);
    Py_XDECREF(kwargs);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
slow:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
fire_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *fallback;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "FireEvent() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:FireEvent", &fallback)) {
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "FireEvent: the fallback must be callable");
        return NULL;
    }
    FireEvent *self = (FireEvent *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fallback = Py_NewRef(fallback);
    self->vectorcall = (vectorcallfunc)fire_vectorcall;
    self->dict = PyDict_New();
    if (self->dict == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    /* inspect.signature(), help() and the docs see the Python function. */
    static const char *copied[] = {"__doc__", "__name__", "__qualname__", "__module__", NULL};
    for (const char **key = copied; *key != NULL; key++) {
        PyObject *value = PyObject_GetAttrString(fallback, *key);
        if (value == NULL) {
            PyErr_Clear();
            continue;
        }
        int failed = PyDict_SetItemString(self->dict, *key, value);
        Py_DECREF(value);
        if (failed) {
            Py_DECREF(self);
            return NULL;
        }
    }
    if (PyDict_SetItemString(self->dict, "__wrapped__", fallback)) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
fire_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self); /* BusCore.fire_event(bus, ...) calls it unbound */
    }
    return PyMethod_New(self, obj);
}

static int
fire_traverse(FireEvent *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    Py_VISIT(self->dict);
    Py_VISIT(self->seen.name);
    return 0;
}

static int
fire_clear(FireEvent *self)
{
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->dict);
    self->seen.bus_dict = self->seen.router = self->seen.router_dict = NULL;
    self->seen.routes = self->seen.listeners = NULL;
    self->seen.bus_tag = self->seen.router_tag = self->seen.routes_tag = TAG_UNKNOWN;
    Py_CLEAR(self->seen.name);
    return 0;
}

static void
fire_dealloc(FireEvent *self)
{
    PyObject_GC_UnTrack(self);
    fire_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject FireEvent_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bus._core._speedups.FireEvent",
    .tp_doc = "BusCore.fire_event with its untraced fan-out in C; the Python function is "
              "the fallback.",
    .tp_basicsize = sizeof(FireEvent),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = fire_new,
    .tp_dealloc = (destructor)fire_dealloc,
    .tp_traverse = (traverseproc)fire_traverse,
    .tp_clear = (inquiry)fire_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(FireEvent, vectorcall),
    .tp_descr_get = fire_get,
    .tp_dictoffset = offsetof(FireEvent, dict),
};

/* -- the service's side ------------------------------------------------------------ */

static int
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

/* Whether item is an unobserved event delivery drain may run: its handler and
 * statistics of exactly the classes configured, its arguments a tuple and a dict. */
static int
runnable(PyObject *item)
{
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 5) {
        return 0;
    }
    PyObject *handler = PyTuple_GET_ITEM(item, 0);
    if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 3)) || PyTuple_GET_ITEM(item, 4) != Py_None ||
        !Py_IS_TYPE(handler, Handler_type) || !PyTuple_CheckExact(PyTuple_GET_ITEM(item, 1)) ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(item, 2))) {
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

static int
run_delivery(PyObject *worker, PyObject *item, PyObject *failed)
{
    PyObject *handler = PyTuple_GET_ITEM(item, 0);
    /* Held for the call, as Python's stack would: the listener may drop them. */
    PyObject *stats = Py_NewRef(SLOT(handler, off_h_stats));
    PyObject *fn = Py_NewRef(SLOT(handler, off_h_fn));
    int rc = run_one(worker, item, failed, handler, stats, fn);
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
    double start = perf_counter();
    PyObject *since = SLOT(worker, off_w_since);
    if (since != NULL && PyFloat_CheckExact(since) && Py_REFCNT(since) == 1) {
        /* Only the worker holds the last start (a reader, or the watchdog's
         * hung_reported, would hold a reference): set it in place. */
        ((PyFloatObject *)since)->ob_fval = start;
        Py_INCREF(since);
    }
    else {
        since = PyFloat_FromDouble(start);
        if (since == NULL) {
            return -1;
        }
        slot_set(worker, off_w_since, since);
    }
    slot_set(worker, off_w_current, handler);
    PyObject *result = PyObject_Call(fn, args, PyDict_GET_SIZE(kwargs) ? kwargs : NULL);
    if (result == NULL) {
        /* The listener raised: Runtime._delivery_failed does the rest, as the
         * Python loop's except clause does. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (traceback != NULL) {
            PyException_SetTraceback(value, traceback);
        }
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
        return -1;
    }
    return 1;
}

static PyObject *
drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "drain(get, worker, failed) takes 3 arguments");
        return NULL;
    }
    PyObject *get = args[0], *worker = args[1], *failed = args[2];
    if (Worker_type == NULL || !Py_IS_TYPE(worker, Worker_type)) {
        return PyObject_CallNoArgs(get); /* not configured for it: the Python loop runs all */
    }
    PyObject *none[1] = {NULL}; /* get's argument parser takes its fast path with an array */
    for (;;) {
        PyObject *item = PyObject_Vectorcall(get, none + 1, 0, NULL);
        if (item == NULL || !runnable(item)) {
            return item;
        }
        int rc = run_delivery(worker, item, failed);
        Py_DECREF(item);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            Py_RETURN_FALSE;
        }
    }
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Runtime, Handler, HandlerStats, Worker, SimpleQueue, deque): the classes "
     "the accelerator works on; once."},
    {"drain", (PyCFunction)(void (*)(void))drain, METH_FASTCALL,
     "drain(get, worker, failed): run unobserved event deliveries off a one-thread "
     "service's mailbox; return the first other item (False when the thread must end)."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bus._core._speedups",
    .m_doc = "The optional C accelerator of untraced event delivery (see bus._core._accel).",
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
    if ((one = PyLong_FromLong(1)) == NULL || (no_kwargs = PyDict_New()) == NULL || PyType_Ready(&FireEvent_Type) < 0 ||
        PyType_Ready(&Lane_Type) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "FireEvent", (PyObject *)&FireEvent_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
