/* The optional C encoder of trace-file lines (bus._observe._otlp_lines).
 *
 * Encoder(...).write_many(records, failed) returns the bytes of a trace
 * file's lines holding each flat record's spans, and build_many(records,
 * out, failed) appends their OTLP JSON text to `out`: exactly what
 * OtlpLines (Python) makes, which is the reference and the fallback. The
 * common records are written in C (their spans by _speedups_otlp_spans.c),
 * straight into one UTF-8 buffer; write_many marks where each span ends and
 * frames them as lines (_speedups_otlp_text.c, file_lines), build_many hands
 * out a run of spans as one text:
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
    Py_ssize_t mark = self->batch.len, spans = self->marks.n;
    int made = otlp_build(self, record);
    if (made > 0) {
        return made;
    }
    /* Spans are written straight into the batch: take back what this
     * record wrote of its own before it turned out to be the Python code's. */
    self->batch.len = mark;
    self->marks.n = spans;
    if (made == 0) {
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyErr_Clear();
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

/* The Python code's spans of one record (strs in `spans`), added to `text`
 * with their marks: as UTF-8, or "surrogatepass" and marked for escaping
 * when one has a lone surrogate, which UTF-8 cannot carry. */
static int
add_python_spans(PyObject *spans, Buf *text, Marks *marks)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(spans); i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        if (!PyUnicode_Check(span)) {
            PyErr_Format(PyExc_TypeError, "a span's text must be a str, not %.100s",
                         Py_TYPE(span)->tp_name);
            return -1;
        }
        Py_ssize_t n;
        const char *data = PyUnicode_AsUTF8AndSize(span, &n);
        PyObject *owner = NULL;
        int flags = 0;
        if (data == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                return -1;
            }
            PyErr_Clear();
            owner = PyUnicode_AsEncodedString(span, "utf-8", "surrogatepass");
            if (owner == NULL) {
                return -1;
            }
            data = PyBytes_AS_STRING(owner);
            n = PyBytes_GET_SIZE(owner);
            flags = SPAN_ESCAPE;
        }
        int rc = buf_put(text, data, n) < 0 || marks_add(marks, text->len, flags) < 0 ? -1 : 0;
        Py_XDECREF(owner);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* write_many(records, failed) -> (made, data, spans): the records' spans as
 * the bytes of a trace file's lines (UTF-8, each line ended), written
 * straight into one buffer (no str per span), and how many spans they are;
 * `made` is `records` itself when every one was made.
 * The common records' spans are written here, the others' by the Python
 * code (`fallback`), as in build_many. */
static PyObject *
Encoder_write_many(Encoder *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "write_many(records: list, failed)");
        return NULL;
    }
    PyObject *records = args[0], *failed = args[1];
    int entered = enter(self);
    if (entered < 0) {
        return NULL;
    }
    /* A call made while another is at the buffers (from a value hook) has
     * buffers of its own, and the Python code writes all its records. */
    Buf own_text = {NULL, 0, 0, 1};
    Marks own_marks = {NULL, 0, 0};
    Buf *text = entered ? &self->batch : &own_text;
    Marks *marks = entered ? &self->marks : &own_marks;
    PyObject *result = NULL, *data = NULL;
    /* `made` is the records' list itself until one is not made (the usual
     * batch): then a new list of those made so far, and on. */
    PyObject *made = NULL, *spans = PyList_New(0);
    if (spans == NULL) {
        goto done;
    }
    if (entered) {
        self->batch.len = 0;
        self->marks.n = 0;
        self->separate = 1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        Py_INCREF(record);
        int done = entered ? build_or_hand_back(self, record) : 0;
        if (done == 0) {
            done = by_python(self, record, spans, failed);
            if (done > 0 && add_python_spans(spans, text, marks) < 0) {
                done = -1;
            }
            if (PyList_SetSlice(spans, 0, PyList_GET_SIZE(spans), NULL) < 0) {
                done = -1;
            }
        }
        if (done == 0 && made == NULL) {
            made = PyList_GetSlice(records, 0, i);
            done = made == NULL ? -1 : 0;
        }
        if (done < 0 || (done && made != NULL && PyList_Append(made, record) < 0)) {
            Py_DECREF(record);
            goto done;
        }
        Py_DECREF(record);
    }
    if (made == NULL) {
        made = Py_NewRef(records); /* every one made: the list given */
    }
    data = file_lines(text, marks, PyBytes_AS_STRING(self->prefix),
                      PyBytes_GET_SIZE(self->prefix));
    if (data != NULL) {
        result = Py_BuildValue("(OOn)", made, data, marks->n);
    }
done:
    Py_XDECREF(made);
    Py_XDECREF(spans);
    Py_XDECREF(data);
    if (entered) {
        self->batch.len = 0;
        self->batch.ascii = 1;
        self->marks.n = 0;
        self->separate = 0;
        self->busy = 0;
    }
    PyMem_Free(own_text.data);
    PyMem_Free(own_marks.at);
    return result;
}

static int
Encoder_init(Encoder *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"limit",    "flags",   "kinds",  "value_json",
                            "fallback", "encoded", "prefix", NULL};
    Py_ssize_t limit;
    int flags;
    PyObject *kinds, *value_json, *fallback, *encoded, *prefix = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "niO!OOO!|S:Encoder", names, &limit, &flags,
                                     &PyTuple_Type, &kinds, &value_json, &fallback,
                                     &PyType_Type, &encoded, &prefix)) {
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
    /* A line's text before its spans: none given, the empty TracesData's. */
    if (prefix == NULL) {
        prefix = PyBytes_FromString("{\"resourceSpans\":[{\"resource\":{},\"scopeSpans\":[{\"scope\":{},\"spans\":[");
        if (prefix == NULL) {
            return -1;
        }
    }
    else {
        Py_INCREF(prefix);
    }
    Py_XSETREF(self->prefix, prefix);
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
    Py_CLEAR(self->prefix);
    return 0;
}

static void
Encoder_dealloc(Encoder *self)
{
    PyObject_GC_UnTrack(self);
    Encoder_clear(self);
    PyMem_Free(self->batch.data);
    PyMem_Free(self->marks.at);
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
    {"write_many", (PyCFunction)(void (*)(void))Encoder_write_many, METH_FASTCALL,
     "write_many(records, failed) -> (made, data, spans): as build_many, the spans as the\n"
     "UTF-8 bytes of trace-file lines (OtlpLines.write_many)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Encoder_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bus._observe._speedups_otlp.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Encoder(limit, flags, kinds, value_json, fallback, encoded, prefix=...): span text in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_traverse = (traverseproc)Encoder_traverse,
    .tp_clear = (inquiry)Encoder_clear,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

/* span_total(records) -> int: sum(map(_records.span_count, records)), the
 * spans the records make: two for a command that ran here (a CALL with no
 * status message and no hop), else one. What is not a record counts one. */
static PyObject *
span_total(PyObject *module, PyObject *records)
{
    if (!PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "span_total(records: list)");
        return NULL;
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *r = PyList_GET_ITEM(records, i);
        total++;
        if (PyTuple_CheckExact(r) && PyTuple_GET_SIZE(r) == CALL_SIZE) {
            PyObject *tag = PyTuple_GET_ITEM(r, 0);
            int overflow;
            if (PyLong_CheckExact(tag) && PyLong_AsLongAndOverflow(tag, &overflow) == CALL &&
                !overflow && PyTuple_GET_ITEM(r, 17) == Py_None &&
                PyTuple_GET_ITEM(r, 19) == Py_None) {
                total++;
            }
        }
    }
    return PyLong_FromSsize_t(total);
}

static PyMethodDef module_methods[] = {
    {"span_total", (PyCFunction)span_total, METH_O,
     "span_total(records) -> int: how many spans the flat records make (_records.span_count)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bus._observe._speedups_otlp",
    .m_doc = "The OTLP JSON text of common flat records, in C (see _otlp_lines).",
    .m_size = -1,
    .m_methods = module_methods,
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
