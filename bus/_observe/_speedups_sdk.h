/* What the C maker of SDK spans shares between its files (see _speedups_sdk.c):
 *
 *   _speedups_sdk.c          the SdkSpans type: which records are C's, in order;
 *   _speedups_sdk_records.c  the spans of a CALL, a FIRE and a DELIVERY record;
 *   _speedups_sdk_spans.c    templates, attribute values, contexts and spans.
 *
 * Functions that make a record's parts return 1 (made), 0 (the record is
 * the Python code's) or -1 (an error is set), as the encoder's do.
 */
#ifndef BUS_SPEEDUPS_SDK_H
#define BUS_SPEEDUPS_SDK_H

#include "_speedups_otlp.h"

#define TEMPLATES 64
#define PRODUCERS_MAX 1024 /* _spans._PRODUCERS_MAX */

typedef struct {
    PyObject *key[4]; /* strong references; key[0] NULL: an empty slot */
    PyObject *name;   /* the span's name: "send x", "process x", the command's */
    PyObject *attrs;  /* CLIENT, PRODUCER or CONSUMER attributes */
    PyObject *server; /* a call's SERVER attributes */
    PyObject *span[2]; /* the __dict__ of its spans (a call's CLIENT and SERVER), name and
                          kind set: see new_span */
} Slot;

/* The attributes of a ReadableSpan, in the order its __init__ sets them. */
enum {
    A_NAME, A_CONTEXT, A_KIND, A_INFO, A_SCOPE, A_PARENT, A_START, A_END, A_ATTRIBUTES,
    A_EVENTS, A_LINKS, A_RESOURCE, A_STATUS, A_COUNT
};

typedef struct {
    PyObject_HEAD
    Py_ssize_t limit;      /* json_limit */
    PyObject *value_json;  /* value -> (text, truncated, lossy): SpanBuilder._value_json */
    PyObject *fallback;    /* (record, out, failed) -> made: the Python code, per record */
    PyObject *owner;       /* the SpanBuilder: its _last, kept in step around the fallback */
    PyObject *producers;   /* the builder's dict: an event's span id -> its context */
    PyObject *encoded;     /* the Encoded type */
    PyTypeObject *span_type;    /* ReadableSpan */
    PyTypeObject *context_type; /* SpanContext */
    PyObject *sampled, *no_state; /* a context's trace flags and trace state */
    PyObject *kinds[4];    /* SpanKind CLIENT, SERVER, PRODUCER, CONSUMER */
    PyObject *scope, *resource, *status;
    PyObject *names[A_COUNT];
    PyObject *no_args;     /* () */
    PyObject *span_dict;   /* a span's __dict__: names, shared values, None for the rest */
    /* The last span made (SpanBuilder._last): strong references or NULL. */
    PyObject *last_trace, *last_id, *last_context;
    Buf value;
    int busy;
    Slot *fires, *deliveries, *calls;
} Sdk;

/* Interned keys and fixed values, made once at import. */
extern PyObject *S_LAST, *S_DICT, *K_ARGS, *K_KWARGS, *K_RESULT, *K_LISTENERS, *K_QUEUED, *K_THREAD;
extern PyObject *K_CALLER, *K_SERVICE, *K_PATTERN, *K_METHOD, *K_RPC_SYSTEM;
extern PyObject *K_MSG_SYSTEM, *K_OP_TYPE, *K_OP_NAME, *K_DESTINATION;
extern PyObject *V_BUS, *V_SEND, *V_PROCESS, *P_SEND, *P_PROCESS;

int sdk_names_init(void);

/* _speedups_sdk_spans.c */
typedef int (*Maker)(Slot *, PyObject *const *);
void slots_free(Slot *table);
int make_fire(Slot *s, PyObject *const *key);
int make_delivery(Slot *s, PyObject *const *key);
int make_call(Slot *s, PyObject *const *key);
Slot *template_of(Sdk *self, Slot **table, PyObject *const *key, Maker make, int kind);
int set_json(Sdk *self, PyObject *attrs, PyObject *key, PyObject *v, int *marked);
int set_queued(PyObject *attrs, PyObject *later, PyObject *earlier);
PyObject *new_context(Sdk *self, PyObject *trace_id, PyObject *span_id);
PyObject *new_producer(Sdk *self, PyObject *trace_id, PyObject *span_id);
PyObject *kept_producer(Sdk *self, PyObject *trace_id, PyObject *span_id);
PyObject *parent_of(Sdk *self, PyObject *trace_id, PyObject *parent_id);
void set_last(Sdk *self, PyObject *trace_id, PyObject *span_id, PyObject *context);
PyObject *new_span(Sdk *self, PyObject *shape, PyObject *context, PyObject *parent,
                   PyObject *start, PyObject *end, PyObject *attrs);

/* _speedups_sdk_records.c: the spans of one record appended to out: 1, 0
 * (the Python code's: nothing appended), -1 (nothing appended). */
int sdk_build(Sdk *self, PyObject *record, PyObject *out);

#endif
