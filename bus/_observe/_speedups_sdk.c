/* The SDK spans of common flat records, in C (bus._observe._spans.SpanBuilder).
 *
 * SdkSpans(...).build_many(records, out, failed) appends the ReadableSpans
 * of each record to `out`, exactly the spans SpanBuilder's Python code makes
 * (that code is the reference and the fallback): the same class, the same
 * attributes set in ReadableSpan.__init__'s order, the same attribute dicts
 * (contents and order), SpanContexts made as _records.span_context makes
 * them and shared where the Python code shares them (an event's with its
 * deliveries, through the builder's own dict of them; a CLIENT span's with
 * its SERVER span, through the builder's _last), and the Status, scope and
 * resource objects shared. The records made here are those the file encoder
 * writes in C (_speedups_otlp.c):
 *
 *   CALL       ran here (no hop), neither failed nor refused, no extras, no
 *              transport attributes;
 *   FIRE       no extras, no transport attributes;
 *   DELIVERY   no failure, no extras, no transport attributes;
 *
 * whose names, services and threads are str, ids plain ints. An argument's
 * or a result's JSON is written by the file encoder's own writer
 * (json_value), or, for what that does not write (a dict, a huge int, NaN,
 * text past json_limit), by the Python code's _put_json (`value_json`). Any
 * other record goes whole to the Python code (`fallback`), in order, and so
 * does one on which anything here fails: it then makes the record's spans,
 * or reports it as it always does.
 *
 * The fixed attributes of a span are copied from a template per (event,
 * caller), (event, pattern, service, thread) and (command, service, caller,
 * thread), which holds them in their order with a placeholder (None) for
 * the keys set each time, so a copy needs no resize and the order is the
 * Python code's. A template is found by the identity of the strs it was
 * made of, which it holds; a table of TEMPLATES slots, each replaced by the
 * next key that hashes to it.
 */
#include "_speedups_sdk.h"

/* -- the builder's _last, kept in step with the Python code's -------------------- */

static int
read_last(Sdk *self)
{
    PyObject *last = PyObject_GetAttr(self->owner, S_LAST);
    if (last == NULL) {
        return -1;
    }
    if (!PyTuple_CheckExact(last) || PyTuple_GET_SIZE(last) != 3) {
        Py_DECREF(last);
        PyErr_SetString(PyExc_TypeError, "SpanBuilder._last must be a 3-tuple");
        return -1;
    }
    set_last(self, PyTuple_GET_ITEM(last, 0), PyTuple_GET_ITEM(last, 1),
             PyTuple_GET_ITEM(last, 2));
    Py_DECREF(last);
    return 0;
}

static int
write_last(Sdk *self)
{
    if (self->last_context == NULL) {
        return 0;
    }
    PyObject *last = PyTuple_Pack(3, self->last_trace, self->last_id, self->last_context);
    if (last == NULL) {
        return -1;
    }
    int rc = PyObject_SetAttr(self->owner, S_LAST, last);
    Py_DECREF(last);
    return rc;
}

/* -- the type ----------------------------------------------------------------------- */

/* sdk_build, and on an Exception the record is the Python code's after all. */
static int
build_or_hand_back(Sdk *self, PyObject *record, PyObject *out)
{
    int made = sdk_build(self, record, out);
    if (made >= 0) {
        return made;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyErr_Clear();
    return 0;
}

static int
enter(Sdk *self)
{
    if (self->fallback == NULL) {
        PyErr_SetString(PyExc_TypeError, "SdkSpans.__init__ was not called");
        return -1;
    }
    if (self->busy) {
        return 0; /* another call is at it: this one's records are the Python code's */
    }
    if (read_last(self) < 0) {
        return -1;
    }
    self->busy = 1;
    return 1;
}

static int
leave(Sdk *self)
{
    self->busy = 0;
    return write_last(self);
}

static PyObject *
Sdk_build(Sdk *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "build(record, out: list)");
        return NULL;
    }
    int entered = enter(self);
    if (entered <= 0) {
        return entered < 0 ? NULL : PyBool_FromLong(0);
    }
    int made = build_or_hand_back(self, args[0], args[1]);
    if (leave(self) < 0 || made < 0) {
        return NULL;
    }
    return PyBool_FromLong(made);
}

static PyObject *
Sdk_build_many(Sdk *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "build_many(records: list, out: list, failed)");
        return NULL;
    }
    PyObject *records = args[0], *out = args[1], *failed = args[2];
    int entered = enter(self);
    if (entered < 0) {
        return NULL;
    }
    PyObject *made = PyList_New(0);
    if (made == NULL) {
        goto error;
    }
    /* The Python fallback may run any code: re-read the list's size each time. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        Py_INCREF(record);
        int done = entered ? build_or_hand_back(self, record, out) : 0;
        if (done == 0) {
            /* The Python code, with the builder's _last as it would have it. */
            done = entered && write_last(self) < 0 ? -1 : 0;
            if (done == 0) {
                PyObject *argv[3] = {record, out, failed};
                PyObject *ok = PyObject_Vectorcall(self->fallback, argv, 3, NULL);
                done = ok == NULL ? -1 : PyObject_IsTrue(ok);
                Py_XDECREF(ok);
            }
            if (done >= 0 && entered && read_last(self) < 0) {
                done = -1;
            }
        }
        if (done < 0 || (done && PyList_Append(made, record) < 0)) {
            Py_DECREF(record);
            goto error;
        }
        Py_DECREF(record);
    }
    if (entered && leave(self) < 0) {
        Py_DECREF(made);
        return NULL;
    }
    return made;
error:
    Py_XDECREF(made);
    if (entered) {
        self->busy = 0;
        /* The error already set wins; _last as far as it got. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (write_last(self) < 0) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, traceback);
    }
    return NULL;
}

static int
Sdk_init(Sdk *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"owner", "limit", "value_json", "fallback", "encoded", "producers",
                         "span_type", "context_type", "sampled", "no_state", "kinds",
                         "scope", "resource", "status", "names", NULL};
    PyObject *owner, *value_json, *fallback, *encoded, *producers, *span_type, *context_type;
    PyObject *sampled, *no_state, *kinds, *scope, *resource, *status, *names;
    Py_ssize_t limit;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "OnOOO!O!O!O!OOO!OOOO!:SdkSpans", kw, &owner, &limit, &value_json,
            &fallback, &PyType_Type, &encoded, &PyDict_Type, &producers, &PyType_Type,
            &span_type, &PyType_Type, &context_type, &sampled, &no_state, &PyTuple_Type, &kinds,
            &scope, &resource, &status, &PyTuple_Type, &names)) {
        return -1;
    }
    if (!PyCallable_Check(value_json) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "value_json and fallback must be callable");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)encoded, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)context_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "encoded and context_type must be tuple types");
        return -1;
    }
    /* The spans are made as object.__new__ makes them and their attributes
     * set as plain object attributes: only for a class that does the same. */
    PyTypeObject *type = (PyTypeObject *)span_type;
    if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_setattro != PyObject_GenericSetAttr ||
        (type->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        PyErr_SetString(PyExc_TypeError, "span_type must be a plain class (ReadableSpan)");
        return -1;
    }
    if (PyTuple_GET_SIZE(kinds) != 4 || PyTuple_GET_SIZE(names) != A_COUNT) {
        PyErr_Format(PyExc_ValueError, "kinds must hold 4 SpanKinds and names %d names",
                     A_COUNT);
        return -1;
    }
    for (int i = 0; i < A_COUNT; i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "names must be str");
            return -1;
        }
    }
    self->limit = limit;
    PyObject **slots[] = {&self->value_json, &self->fallback, &self->owner, &self->producers,
                          &self->encoded, (PyObject **)&self->span_type,
                          (PyObject **)&self->context_type, &self->sampled, &self->no_state,
                          &self->scope, &self->resource, &self->status};
    PyObject *given[] = {value_json, fallback, owner, producers, encoded, span_type,
                         context_type, sampled, no_state, scope, resource, status};
    for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
        Py_XSETREF(*slots[i], Py_NewRef(given[i]));
    }
    for (int i = 0; i < 4; i++) {
        Py_XSETREF(self->kinds[i], Py_NewRef(PyTuple_GET_ITEM(kinds, i)));
    }
    for (int i = 0; i < A_COUNT; i++) {
        PyObject *name = Py_NewRef(PyTuple_GET_ITEM(names, i));
        PyUnicode_InternInPlace(&name);
        Py_XSETREF(self->names[i], name);
    }
    if (self->no_args == NULL && (self->no_args = PyTuple_New(0)) == NULL) {
        return -1;
    }
    PyObject *shared[A_COUNT] = {
        [A_NAME] = Py_None, [A_CONTEXT] = Py_None, [A_KIND] = Py_None, [A_INFO] = Py_None,
        [A_SCOPE] = scope, [A_PARENT] = Py_None, [A_START] = Py_None, [A_END] = Py_None,
        [A_ATTRIBUTES] = Py_None, [A_EVENTS] = self->no_args, [A_LINKS] = self->no_args,
        [A_RESOURCE] = resource, [A_STATUS] = status,
    };
    /* The __dict__ of a span made as object.__new__ makes it, its attributes
     * set one by one: a dict sharing the class's keys (a split table, where
     * the interpreter has them), whose copies are as small and quick. */
    PyObject *model = PyBaseObject_Type.tp_new(type, self->no_args, NULL);
    if (model == NULL) {
        return -1;
    }
    for (int i = 0; i < A_COUNT; i++) {
        if (PyObject_GenericSetAttr(model, self->names[i], shared[i]) < 0) {
            Py_DECREF(model);
            return -1;
        }
    }
    PyObject *span_dict = PyObject_GenericGetDict(model, NULL);
    Py_DECREF(model);
    if (span_dict == NULL) {
        return -1;
    }
    if (!PyDict_CheckExact(span_dict) || PyDict_GET_SIZE(span_dict) != A_COUNT) {
        Py_DECREF(span_dict);
        PyErr_SetString(PyExc_TypeError, "span_type's instances do not keep a plain __dict__");
        return -1;
    }
    Py_XSETREF(self->span_dict, span_dict);
    self->value.ascii = 1;
    return 0;
}

static int
Sdk_traverse(Sdk *self, visitproc visit, void *arg)
{
    Py_VISIT(self->value_json);
    Py_VISIT(self->fallback);
    Py_VISIT(self->owner);
    Py_VISIT(self->producers);
    Py_VISIT(self->last_context);
    return 0;
}

static int
Sdk_clear(Sdk *self)
{
    Py_CLEAR(self->value_json);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->producers);
    Py_CLEAR(self->last_trace);
    Py_CLEAR(self->last_id);
    Py_CLEAR(self->last_context);
    return 0;
}

static void
Sdk_dealloc(Sdk *self)
{
    PyObject_GC_UnTrack(self);
    Sdk_clear(self);
    Py_CLEAR(self->encoded);
    Py_CLEAR(self->span_type);
    Py_CLEAR(self->context_type);
    Py_CLEAR(self->sampled);
    Py_CLEAR(self->no_state);
    Py_CLEAR(self->scope);
    Py_CLEAR(self->resource);
    Py_CLEAR(self->status);
    Py_CLEAR(self->no_args);
    Py_CLEAR(self->span_dict);
    for (int i = 0; i < 4; i++) {
        Py_CLEAR(self->kinds[i]);
    }
    for (int i = 0; i < A_COUNT; i++) {
        Py_CLEAR(self->names[i]);
    }
    PyMem_Free(self->value.data);
    slots_free(self->fires);
    slots_free(self->deliveries);
    slots_free(self->calls);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Sdk_methods[] = {
    {"build", (PyCFunction)(void (*)(void))Sdk_build, METH_FASTCALL,
     "build(record, out) -> bool: append the record's spans to out, if made here."},
    {"build_many", (PyCFunction)(void (*)(void))Sdk_build_many, METH_FASTCALL,
     "build_many(records, out, failed) -> list: as SpanBuilder.build_many."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject SdkSpans_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bus._observe._speedups_otlp.SdkSpans",
    .tp_basicsize = sizeof(Sdk),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SdkSpans(owner, limit, ...): SpanBuilder's ReadableSpans of common records, in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sdk_init,
    .tp_traverse = (traverseproc)Sdk_traverse,
    .tp_clear = (inquiry)Sdk_clear,
    .tp_dealloc = (destructor)Sdk_dealloc,
    .tp_methods = Sdk_methods,
};

int
sdk_init(void)
{
    if (sdk_names_init() < 0) {
        return -1;
    }
    return PyType_Ready(&SdkSpans_type);
}
