/* BusCore.fire_event as a method descriptor: the untraced fan-out (see _speedups.c). */
#include "_speedups.h"

static PyTypeObject *checked_bus_type; /* a bus class whose instances keep these in __dict__ */

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

/* The router of an open bus (for events, one without a transport), with its
 * observer (None when unobserved) and wait graph in seen; NULL (maybe with an
 * error) when the Python function must take the call. Borrowed. */
static inline PyObject *
open_router(Seen *seen, PyObject *bus, int events)
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
        PyObject *observer = dict_get(dict, s_observer);
        PyObject *waits = observer == NULL ? NULL : dict_get(dict, s_waits);
        if (waits != NULL && dict_get(dict, s_closing) == Py_False &&
            (!events || dict_get(dict, s_outlet) == Py_None)) {
            router = dict_get(dict, s_router);
        }
        if (router != NULL) { /* no Python code ran since the tag was read */
            seen->bus_dict = dict;
            seen->bus_tag = tag;
            seen->router = router;
            seen->observer = observer;
            seen->waits = waits;
        }
    }
    Py_DECREF(dict); /* the bus holds it, and it holds the router */
    return router;
}

/* routing_table, inlined into fire_event's own lookup: the hot path. */
static inline PyObject *
table_of(Wrapper *self, PyObject *bus, PyObject *key, int events)
{
    if (!plain_bus_type(Py_TYPE(bus))) {
        return NULL;
    }
    Seen *seen = &self->seen;
    PyObject *router = open_router(seen, bus, events);
    if (router == NULL) {
        return NULL;
    }
    PyObject *router_dict = PyObject_GenericGetDict(router, NULL);
    if (router_dict == NULL) {
        return NULL;
    }
    uint64_t tag = DICT_TAG(router_dict);
    PyObject *table;
    if (tag != TAG_UNKNOWN && router_dict == seen->router_dict && tag == seen->router_tag) {
        table = seen->routes;
    }
    else {
        /* The router replaces a table whole: a new dict, a new tag. */
        seen->router_dict = NULL;
        table = dict_get(router_dict, key);
        if (table != NULL && PyDict_CheckExact(table)) {
            seen->router_dict = router_dict;
            seen->router_tag = tag;
            seen->routes = table;
            seen->routes_tag = TAG_UNKNOWN;
        }
        else {
            table = NULL;
        }
    }
    Py_DECREF(router_dict); /* the router holds it */
    return table;
}

PyObject *
routing_table(Wrapper *self, PyObject *bus, PyObject *key, int events)
{
    return table_of(self, bus, key, events);
}

/* The listeners of an event fired on a bus that is open, without a transport
 * (its observer, if any, in self->seen), or NULL (maybe with an error) when
 * the Python function must take the call. */
static PyObject *
fast_listeners(Wrapper *self, PyObject *bus, PyObject *name)
{
    PyObject *routes = table_of(self, bus, s_routes, 1);
    if (routes == NULL) {
        return NULL;
    }
    Seen *seen = &self->seen;
    PyObject *listeners;
    uint64_t tag = DICT_TAG(routes);
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

/* BusCore._fire_observed for a bus without a transport: the observer makes
 * the event and each delivery's ticket, as in Python. 0, or -1 on error. */
static int
fire_observed(PyObject *bus, PyObject *observer, PyObject *name, PyObject *args,
              PyObject *kwargs, PyObject *listeners)
{
    int traced = fire_traced(bus, observer, name, args, kwargs, listeners);
    if (traced != 0) { /* a traced event no one watches, written down in C */
        return traced < 0 ? -1 : 0;
    }
    PyObject *fired[5] = {observer, name, args, kwargs, listeners};
    PyObject *event =
        PyObject_VectorcallMethod(s_event_fired, fired, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (event == NULL) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyTuple_GET_SIZE(listeners); i++) {
        PyObject *handler = PyTuple_GET_ITEM(listeners, i);
        PyObject *ticket;
        if (event == Py_None) {
            ticket = Py_NewRef(Py_None);
        }
        else {
            PyObject *queued[3] = {observer, event, handler};
            ticket = PyObject_VectorcallMethod(s_delivery_queued, queued,
                                               3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (ticket == NULL) {
                rc = -1;
                break;
            }
        }
        rc = deliver(bus, handler, args, kwargs, name, observer, ticket);
        Py_DECREF(ticket);
    }
    if (rc == 0 && event != Py_None) {
        PyObject *posted[2] = {observer, event};
        PyObject *done = PyObject_VectorcallMethod(s_event_posted, posted,
                                                   2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        rc = done == NULL ? -1 : 0;
        Py_XDECREF(done);
    }
    Py_DECREF(event);
    return rc;
}

static PyObject *
fire_vectorcall(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2 || !PyUnicode_CheckExact(args[1])) {
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
    /* Without keyword arguments every item shares one empty dict, never
     * changed (the delivery calls the listener without it; current_event()
     * copies it); with them, the deliveries of the event share one, as in Python. */
    PyObject *kwargs = kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0
                           ? Py_NewRef(no_kwargs)
                           : keywords(args + nargs, kwnames);
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
    PyObject *observer = Py_NewRef(self->seen.observer);
    if (observer == Py_None) {
        for (Py_ssize_t i = 0; rc == 0 && i < PyTuple_GET_SIZE(listeners); i++) {
            rc = deliver(bus, PyTuple_GET_ITEM(listeners, i), event_args, kwargs, name, NULL,
                         Py_None);
        }
    }
    else if (rc == 0) {
        rc = fire_observed(bus, observer, name, event_args, kwargs, listeners);
    }
    Py_DECREF(observer);
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

/* A Wrapper of the Python function args[0] that type's calls go to first. */
PyObject *
wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwds, vectorcallfunc vectorcall)
{
    PyObject *fallback;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", type->tp_name);
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O", &fallback)) {
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_Format(PyExc_TypeError, "%s: the fallback must be callable", type->tp_name);
        return NULL;
    }
    Wrapper *self = (Wrapper *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fallback = Py_NewRef(fallback);
    self->vectorcall = vectorcall;
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
fire_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)fire_vectorcall);
}

PyObject *
wrapper_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self); /* BusCore.fire_event(bus, ...) calls it unbound */
    }
    return PyMethod_New(self, obj);
}

int
wrapper_traverse(Wrapper *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    Py_VISIT(self->dict);
    Py_VISIT(self->seen.name);
    return 0;
}

int
wrapper_clear(Wrapper *self)
{
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->dict);
    self->seen.bus_dict = self->seen.router = self->seen.router_dict = NULL;
    self->seen.routes = self->seen.listeners = NULL;
    self->seen.observer = self->seen.waits = NULL;
    self->seen.bus_tag = self->seen.router_tag = self->seen.routes_tag = TAG_UNKNOWN;
    Py_CLEAR(self->seen.name);
    return 0;
}

void
wrapper_dealloc(Wrapper *self)
{
    PyObject_GC_UnTrack(self);
    wrapper_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyTypeObject FireEvent_Type = WRAPPER_TYPE(
    "FireEvent",
    "BusCore.fire_event with its fan-out in C; the Python function is the fallback.",
    fire_new);
