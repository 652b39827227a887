/* The optional C encoder of trace-file lines (bus._observe._otlp_lines).
 *
 * Encoder(...).build_many(records, out, failed) appends the OTLP JSON text of
 * each flat record's spans to `out`, exactly the text OtlpLines (Python)
 * makes: that code is the reference and the fallback. The common records
 * are written in C (their spans by _speedups_otlp_spans.c), a span at a time
 * into one UTF-8 buffer, and a run of spans handed out as one text:
 *
 *   CALL       ran here (no hop), neither failed nor refused, no annotations
 *              or events or links (extras None), no transport attributes;
 *   FIRE       no extras, no transport attributes;
 *   DELIVERY   no failure, no extras, no transport attributes;
 *
 * whose names, services and threads are str, ids and times plain ints of the
 * usual sizes. Arguments and results are written here when they are str,
 * int, float, bool, None, a tuple of those, or already encoded (Encoded);
 * anything else (a dict of keyword arguments, a huge int, NaN, a lone
 * surrogate, text past json_limit) is handed to OtlpLines._value_json, the
 * Python code's own _put_json. Any other record goes whole to the Python
 * code (`fallback`), and so does one on which anything here fails: the
 * Python code then makes its spans, or raises and reports it as it always
 * does, so a bad value never ends the trace thread.
 */
#include "_speedups_otlp.h"

/* -- the encoder -------------------------------------------------------------- */

/* The batch's spans, comma-separated, as one str appended to `out`: one
 * object, and one copy less when OtlpLines.line joins them. A batch is cut
 * at FLUSH_AT bytes: a line is made of such texts (OtlpLines.lines), and
 * text past 128 KiB is allocated (and encoded, and copied) by mmap'ing fresh
 * pages each time, dozens of times slower per byte. */
#define FLUSH_AT (48 * 1024)
static int
flush(Encoder *self, PyObject *out)
{
    Buf *batch = &self->batch;
    if (batch->len == 0) {
        return 0;
    }
    PyObject *text = buf_str(batch);
    batch->len = 0;
    batch->ascii = 1;
    if (text == NULL) {
        return -1;
    }
    int rc = PyList_Append(out, text);
    Py_DECREF(text);
    return rc;
}

/* build(), and on an Exception the record is the Python code's after all,
 * with whatever it added taken back. */
static int
build_or_hand_back(Encoder *self, PyObject *record)
{
    Py_ssize_t mark = self->batch.len;
    int made = otlp_build(self, record);
    if (made >= 0) {
        return made;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyErr_Clear();
    self->batch.len = mark;
    return 0;
}

/* The Python code, for one record: whether it made the record's spans. */
static int
by_python(Encoder *self, PyObject *record, PyObject *out, PyObject *failed)
{
    PyObject *argv[3] = {record, out, failed};
    PyObject *ok = PyObject_Vectorcall(self->fallback, argv, 3, NULL);
    int done = ok == NULL ? -1 : PyObject_IsTrue(ok);
    Py_XDECREF(ok);
    return done;
}

/* Whether this call may use the buffers: not before __init__, and not while
 * another call (another thread, while a value hook runs Python code) is at
 * them; that one's records then go to the Python code. */
static int
enter(Encoder *self)
{
    if (self->fallback == NULL) {
        PyErr_SetString(PyExc_TypeError, "Encoder.__init__ was not called");
        return -1;
    }
    if (self->busy) {
        return 0;
    }
    self->busy = 1;
    return 1;
}

static PyObject *
Encoder_build(Encoder *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "build(record, out: list)");
        return NULL;
    }
    int entered = enter(self);
    if (entered <= 0) {
        return entered < 0 ? NULL : PyBool_FromLong(0);
    }
    int made = build_or_hand_back(self, args[0]);
    if (made < 0 || flush(self, args[1]) < 0) {
        self->batch.len = 0;
        self->busy = 0;
        return NULL;
    }
    self->busy = 0;
    return PyBool_FromLong(made);
}

static PyObject *
Encoder_build_many(Encoder *self, PyObject *const *args, Py_ssize_t nargs)
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
        int done = entered ? build_or_hand_back(self, record) : 0;
        if (done == 0) {
            /* The spans made so far go first, in order. */
            done = entered && flush(self, out) < 0 ? -1 : by_python(self, record, out, failed);
        }
        /* Texts past FLUSH_AT would cost more than they save: see flush(). */
        if (done > 0 && entered && self->batch.len >= FLUSH_AT && flush(self, out) < 0) {
            done = -1;
        }
        if (done < 0 || (done && PyList_Append(made, record) < 0)) {
            Py_DECREF(record);
            goto error;
        }
        Py_DECREF(record);
    }
    if (entered && flush(self, out) < 0) {
        goto error;
    }
    if (entered) {
        self->busy = 0;
    }
    return made;
error:
    Py_XDECREF(made);
    if (entered) {
        self->batch.len = 0;
        self->busy = 0;
    }
    return NULL;
}

static int
Encoder_init(Encoder *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"limit", "flags", "kinds", "value_json", "fallback", "encoded", NULL};
    Py_ssize_t limit;
    int flags;
    PyObject *kinds, *value_json, *fallback, *encoded;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "niO!OOO!:Encoder", names, &limit, &flags,
                                     &PyTuple_Type, &kinds, &value_json, &fallback,
                                     &PyType_Type, &encoded)) {
        return -1;
    }
    if (!PyArg_ParseTuple(kinds, "iiii:kinds (client, server, producer, consumer)",
                          &self->kinds[K_CLIENT], &self->kinds[K_SERVER],
                          &self->kinds[K_PRODUCER], &self->kinds[K_CONSUMER])) {
        return -1;
    }
    if (!PyCallable_Check(value_json) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "value_json and fallback must be callable");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)encoded, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "encoded must be a tuple type (Encoded)");
        return -1;
    }
    self->limit = limit;
    self->flags = flags;
    self->batch.ascii = 1;
    Py_INCREF(value_json);
    Py_XSETREF(self->value_json, value_json);
    Py_INCREF(fallback);
    Py_XSETREF(self->fallback, fallback);
    Py_INCREF(encoded);
    Py_XSETREF(self->encoded, encoded);
    return 0;
}

static int
Encoder_traverse(Encoder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->value_json);
    Py_VISIT(self->fallback);
    Py_VISIT(self->encoded);
    return 0;
}

static int
Encoder_clear(Encoder *self)
{
    Py_CLEAR(self->value_json);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->encoded);
    return 0;
}

static void
Encoder_dealloc(Encoder *self)
{
    PyObject_GC_UnTrack(self);
    Encoder_clear(self);
    PyMem_Free(self->span.data);
    PyMem_Free(self->batch.data);
    PyMem_Free(self->value.data);
    templates_free(self->deliveries);
    templates_free(self->fires);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Encoder_methods[] = {
    {"build", (PyCFunction)(void (*)(void))Encoder_build, METH_FASTCALL,
     "build(record, out) -> bool: append the record's spans to out (one str), if made here."},
    {"build_many", (PyCFunction)(void (*)(void))Encoder_build_many, METH_FASTCALL,
     "build_many(records, out, failed) -> list: as OtlpLines.build_many; a str in out\n"
     "may hold several spans, comma-separated."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Encoder_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bus._observe._speedups_otlp.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Encoder(limit, flags, kinds, value_json, fallback, encoded): span text in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_traverse = (traverseproc)Encoder_traverse,
    .tp_clear = (inquiry)Encoder_clear,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bus._observe._speedups_otlp",
    .m_doc = "The OTLP JSON text of common flat records, in C (see _otlp_lines).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups_otlp(void)
{
    if (PyType_Ready(&Encoder_type) < 0) {
        return NULL;
    }
    if (otlp_text_init() < 0 || sdk_init() < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&Encoder_type);
    if (PyModule_AddObject(m, "Encoder", (PyObject *)&Encoder_type) < 0) {
        Py_DECREF(&Encoder_type);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "SdkSpans", (PyObject *)&SdkSpans_type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
