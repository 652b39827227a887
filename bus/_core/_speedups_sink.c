/* The trace sink's submit (TraceSink.submit) as SinkSubmit (see _speedups.c).
 *
 * The same room check, append and early wake of the trace thread as the
 * Python method, which takes a record that finds the buffer full (it waits,
 * or drops and counts, under its lock). What it reads of a sink's __dict__
 * is kept until that dict changes (PEP 509 tags), BATCH_WAKE of the class
 * until the class does (its version tag), and deque.append's C function is
 * called directly. submit_record() is how the C hooks hand a flat record
 * to a hub's _submit: a SinkSubmit bound to its sink runs without the
 * bound call between.
 */
#include "_speedups.h"

static PyTypeObject *sink_type, *deque_type;
static PyCFunction append_fn; /* deque.append's C function (METH_O), NULL: call the method */
static PyObject *k_buffer, *k_room, *k_batch_wake, *k_wake, *k_set;

/* What sink_submit read of a sink's __dict__, read again only when it
 * changed (PEP 509 tags; every time where there are none). Borrowed: valid
 * while no Python code runs. */
static struct {
    PyObject *dict; /* NULL: nothing kept */
    uint64_t tag;
    PyObject *buffer, *wake, *wake_at; /* wake_at: NULL when the class has it */
    Py_ssize_t room;
} seen_sink;

/* An int read from a sink: 1 (in *value), 0 when it is not a plain int. */
static int
sink_int(PyObject *found, Py_ssize_t *value)
{
    if (found == NULL || !PyLong_CheckExact(found)) {
        return 0;
    }
    *value = PyLong_AsSsize_t(found);
    if (*value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* The sink's state in seen_sink: 1, 0 when the Python method must take
 * the record (an attribute missing or not what it should be), -1 on error. */
static int
sink_state(PyObject *sink)
{
    PyObject *dict = PyObject_GenericGetDict(sink, NULL);
    if (dict == NULL) {
        return -1;
    }
    uint64_t tag = DICT_TAG(dict);
    int rc = 1;
    if (tag == TAG_UNKNOWN || dict != seen_sink.dict || tag != seen_sink.tag) {
        seen_sink.dict = NULL;
        PyObject *keys[] = {k_buffer, k_room, k_wake, k_batch_wake};
        PyObject *values[4];
        for (size_t i = 0; rc == 1 && i < 4; i++) {
            values[i] = PyDict_GetItemWithError(dict, keys[i]);
            if (values[i] == NULL && (PyErr_Occurred() || i < 3)) {
                rc = PyErr_Occurred() ? -1 : 0;
            }
        }
        if (rc == 1 && (!Py_IS_TYPE(values[0], deque_type) ||
                        !sink_int(values[1], &seen_sink.room))) {
            rc = 0;
        }
        if (rc == 1) {
            seen_sink.buffer = values[0];
            seen_sink.wake = values[2];
            seen_sink.wake_at = values[3];
            seen_sink.tag = tag;
            seen_sink.dict = tag == TAG_UNKNOWN ? NULL : dict;
        }
    }
    Py_DECREF(dict); /* the sink holds it */
    return rc;
}

/* TraceSink.submit(sink, record) when the buffer has room: 1 done, 0 the
 * Python method's turn (a full buffer, or a sink not as expected), -1 on error. */
static int
submit_fast(PyObject *sink, PyObject *record)
{
    if (sink_type == NULL || !Py_IS_TYPE(sink, sink_type)) {
        return 0;
    }
    int rc = sink_state(sink);
    Py_ssize_t wake_at;
    if (rc <= 0) {
        return rc;
    }
    /* BATCH_WAKE from the instance, or else from the class (kept while the
     * class's version tag holds: any change to the class gives a new one) */
    static unsigned int class_version;
    static Py_ssize_t class_wake_at;
    if (seen_sink.wake_at != NULL) {
        if (!sink_int(seen_sink.wake_at, &wake_at)) {
            return 0;
        }
    }
    else if (class_version != 0 && sink_type->tp_version_tag == class_version &&
             PyType_HasFeature(sink_type, Py_TPFLAGS_VALID_VERSION_TAG)) {
        wake_at = class_wake_at;
    }
    else {
        if (!sink_int(_PyType_Lookup(sink_type, k_batch_wake), &wake_at)) {
            return 0;
        }
        /* the lookup gave the class a valid tag, if it can have one */
        class_version = PyType_HasFeature(sink_type, Py_TPFLAGS_VALID_VERSION_TAG)
                            ? sink_type->tp_version_tag
                            : 0;
        class_wake_at = wake_at;
    }
    PyObject *buffer = seen_sink.buffer, *wake = seen_sink.wake;
    Py_ssize_t held = PyObject_Size(buffer), room = seen_sink.room;
    if (held < 0 || held >= room) {
        return held < 0 ? -1 : 0; /* full: the Python method waits, or drops and counts */
    }
    Py_INCREF(buffer);
    Py_INCREF(wake);
    if (append_fn != NULL) { /* deque.append(record), its C function called directly */
        PyObject *done = append_fn(buffer, record);
        rc = done == NULL ? -1 : 0;
        Py_XDECREF(done);
    }
    else {
        PyObject *append[2] = {buffer, record};
        rc = call_discard(deque_append, append, 2);
    }
    if (rc == 0 && held == wake_at) { /* a batch is waiting: wake the trace thread early */
        PyObject *done = PyObject_CallMethodNoArgs(wake, k_set);
        rc = done == NULL ? -1 : 0;
        Py_XDECREF(done);
    }
    Py_DECREF(buffer);
    Py_DECREF(wake);
    return rc < 0 ? -1 : 1;
}

static PyObject *
sink_submit(Wrapper *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) == 2 && kwnames == NULL) {
        int rc = submit_fast(args[0], args[1]);
        if (rc != 0) {
            if (rc < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

int
submit_record(PyObject *submit, PyObject *record)
{
    if (PyMethod_Check(submit) && Py_IS_TYPE(PyMethod_GET_FUNCTION(submit), &SinkSubmit_Type)) {
        PyObject *sink = PyMethod_GET_SELF(submit);
        int rc = submit_fast(sink, record);
        if (rc != 0) {
            return rc < 0 ? -1 : 0;
        }
        PyObject *args[2] = {sink, record};
        Wrapper *wrapper = (Wrapper *)PyMethod_GET_FUNCTION(submit);
        return call_discard(wrapper->fallback, args, 2);
    }
    return call_discard(submit, &record, 1);
}

static PyObject *
sink_submit_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return wrapper_new(type, args, kwds, (vectorcallfunc)sink_submit);
}

PyTypeObject SinkSubmit_Type = WRAPPER_TYPE(
    "SinkSubmit", "TraceSink.submit with its append in C; the Python method takes a full buffer.",
    sink_submit_new);

/* -- configure_sink() ---------------------------------------------------------------- */

PyObject *
configure_sink(PyObject *module, PyObject *args)
{
    PyObject *sink, *deque;
    if (!PyArg_ParseTuple(args, "OO:configure_sink", &sink, &deque)) {
        return NULL;
    }
    if (sink_type != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_sink: once");
        return NULL;
    }
    if (!PyType_Check(sink) || !PyType_Check(deque)) {
        PyErr_SetString(PyExc_TypeError, "configure_sink: the sink and the deque must be classes");
        return NULL;
    }
    PyObject *keys[] = {k_buffer, k_room, k_batch_wake, k_wake, k_set};
    const char *texts[] = {"_buffer", "_room", "BATCH_WAKE", "_wake", "set"};
    for (size_t i = 0; i < 5; i++) {
        if ((keys[i] = PyUnicode_InternFromString(texts[i])) == NULL) {
            return NULL;
        }
    }
    k_buffer = keys[0];
    k_room = keys[1];
    k_batch_wake = keys[2];
    k_wake = keys[3];
    k_set = keys[4];
    PyObject *append = PyObject_GetAttrString(deque, "append");
    if (append == NULL) {
        return NULL;
    }
    if (Py_IS_TYPE(append, &PyMethodDescr_Type)) {
        PyMethodDef *def = ((PyMethodDescrObject *)append)->d_method;
        if ((def->ml_flags & (METH_VARARGS | METH_FASTCALL | METH_NOARGS | METH_O |
                              METH_KEYWORDS | METH_METHOD)) == METH_O) {
            append_fn = def->ml_meth;
        }
    }
    Py_DECREF(append);
    deque_type = (PyTypeObject *)Py_NewRef(deque);
    sink_type = (PyTypeObject *)Py_NewRef(sink);
    Py_RETURN_NONE;
}
