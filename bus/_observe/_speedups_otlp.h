/* What the C encoder of trace-file lines shares between its files.
 *
 *   _speedups_otlp.c       the module and the Encoder: which records are C's;
 *   _speedups_otlp_spans.c the spans of those records, attribute by attribute;
 *   _speedups_otlp_text.c  JSON text: the buffer, escaped strings, numbers, ids;
 *   _speedups_otlp_lines.c the lines of a trace file made of a batch's spans;
 *   _speedups_sdk*.c       SdkSpans: the SDK ReadableSpans of the same records
 *                          (_speedups_sdk.h says what its files share).
 *
 * Functions that read a value return 1 (written), 0 (not one written here:
 * the Python code's) or -1 (an error is set).
 */
#ifndef BUS_SPEEDUPS_OTLP_H
#define BUS_SPEEDUPS_OTLP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_core/_speedups_long.h"

#include <stdint.h>
#include <string.h>

/* -- a growing UTF-8 buffer ---------------------------------------------------- */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    int ascii; /* every byte written so far is ASCII */
} Buf;

int buf_grow(Buf *b, Py_ssize_t more);

static inline int
buf_put(Buf *b, const char *text, Py_ssize_t n)
{
    if (b->cap - b->len < n && buf_grow(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, text, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT(b, literal) buf_put((b), (literal), (Py_ssize_t)sizeof(literal) - 1)

int buf_hex(Buf *b, uint64_t value, int digits);
int buf_int(Buf *b, long long value);
int buf_float(Buf *b, double value);
int buf_micros(Buf *b, long long n);
int buf_escaped(Buf *b, const char *text, Py_ssize_t n);
PyObject *buf_str(Buf *b);

/* -- the spans of a batch, and the lines of a trace file made of them
 * (_speedups_otlp_lines.c) ------------------------------------------------------ */

/* Where each span of a batch ends in its buffer (spans are written one after
 * another, with nothing between them), and whether it holds a lone
 * surrogate (encoded "surrogatepass"): its line is then written all ASCII,
 * as json.dumps(json.loads(line)) writes it. */
enum { SPAN_ESCAPE = 1, SPAN_FIRST = 2 /* the first of its line: set by file_lines */ };
typedef struct {
    Py_ssize_t end;
    int flags;
} Mark;

typedef struct {
    Mark *at;
    Py_ssize_t n, cap;
} Marks;

int marks_add(Marks *m, Py_ssize_t end, int flags);

/* The spans in `text` (ended by `marks`) as the bytes of a trace file: lines
 * of `prefix`, spans comma-separated, "]}]}]}\n", a line cut before a span
 * that would take its span text past LINE_TEXT bytes (OtlpLines.file_bytes). */
#define LINE_TEXT 64000
PyObject *file_lines(const Buf *text, Marks *marks, const char *prefix, Py_ssize_t prefix_len);

/* -- reading values ------------------------------------------------------------- */

int utf8_of(PyObject *text, const char **data, Py_ssize_t *n, PyObject **owner);
int put_string(Buf *b, PyObject *text);
int as_u64(PyObject *value, uint64_t *out);
int as_i64(PyObject *value, long long *out);
int put_trace_id(Buf *b, PyObject *value);

/* The constants the above use; once, at import. */
int otlp_text_init(void);

/* -- the encoder ---------------------------------------------------------------- */

/* The fixed text of an event's or a delivery's spans (_speedups_otlp_events.c). */
typedef struct Template Template;
void templates_free(Template *table);

typedef struct {
    PyObject_HEAD
    Py_ssize_t limit;  /* json_limit: the most characters of an argument's JSON */
    PyObject *value_json; /* value -> (text, truncated, lossy): OtlpLines._value_json */
    PyObject *fallback;   /* (record, out, failed) -> made: the Python code, per record */
    PyObject *encoded;    /* the Encoded type */
    int flags;            /* the spans' "flags" (_spans._FLAGS) */
    int kinds[4];         /* OTLP kind of CLIENT, SERVER, PRODUCER, CONSUMER */
    Buf batch;            /* spans written, not yet handed out (flush, or write_many's lines) */
    Marks marks;          /* write_many: where each span in batch ends */
    int separate;         /* write_many: spans marked, not comma-separated */
    PyObject *prefix;     /* bytes: a line's text before its spans (write_many) */
    int busy;             /* in build, build_many or write_many: the buffers are in use */
    Buf value;            /* an argument's JSON being written */
    Template *deliveries; /* per (event, pattern, service, thread); NULL until used */
    Template *fires;      /* per (event, caller) */
} Encoder;

enum { K_CLIENT, K_SERVER, K_PRODUCER, K_CONSUMER };

/* Add the spans of `record` to self->batch: 1, or 0 when the record is the
 * Python code's, or -1 (for either, the batch may hold part of it: the
 * caller takes it back). */
int otlp_build(Encoder *self, PyObject *record);

/* _speedups_otlp_spans.c: what a span's writers share. The value readers
 * return 1 (written), 0 (the Python code's) or -1. */
enum { CALL = 0, FIRE = 1, DELIVERY = 2 };
enum { CALL_SIZE = 21, FIRE_SIZE = 13, DELIVERY_SIZE = 15 };
int put_str_attr(Buf *b, const char *key, PyObject *value);
int put_queued(Buf *b, long long later, long long earlier);
int put_json_attr(Encoder *self, Buf *b, const char *key, PyObject *v);
/* A span's text goes straight into the batch: begin_span before its first
 * byte (a comma between spans of a str), finish after its attributes (the
 * status; the span's mark in write_many). 0 or -1. */
int begin_span(Encoder *self, Buf *b);
int finish(Encoder *self, Buf *b);
/* The JSON text of an argument or result into b (1), or 0 (the Python code's). */
int json_value(Buf *b, Py_ssize_t limit, PyObject *v);

/* _speedups_otlp_events.c: the spans of FIRE and DELIVERY records, as otlp_build. */
int otlp_fire(Encoder *self, PyObject **r);
int otlp_delivery(Encoder *self, PyObject **r);

/* _speedups_sdk.c: SdkSpans, the SDK spans of the same records, and its set-up. */
extern PyTypeObject SdkSpans_type;
int sdk_init(void);

/* In a writer returning 1 (written), 0 (the Python code's) or -1 (an
 * error): pass on a 0 or -1 of `expr` (TRY), or a -1 (OK). */
#define TRY(expr)            \
    do {                     \
        int found_ = (expr); \
        if (found_ <= 0) {   \
            return found_;   \
        }                    \
    } while (0)

#define OK(expr)          \
    do {                  \
        if ((expr) < 0) { \
            return -1;    \
        }                 \
    } while (0)

#endif
