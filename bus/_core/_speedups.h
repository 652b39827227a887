/* What the files of the C accelerator share (see _speedups.c). */
#ifndef BUS_SPEEDUPS_H
#define BUS_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* Nothing here is for other objects to link against: without this, a name
 * the C library also exports (it has an advance(), for one) would bind to
 * the library's function rather than to ours. Only PyInit__speedups, which
 * Python declares, is exported. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* What configure() is given and works out (defined in _speedups.c). */
extern PyTypeObject *Runtime_type, *Handler_type, *Stats_type, *Worker_type;
extern PyObject *queue_qsize, *queue_put, *deque_append, *one, *no_kwargs;
extern Py_ssize_t off_h_dispatched, off_h_destination, off_h_fn, off_h_stats, off_h_lane;
extern Py_ssize_t off_s_calls, off_s_latencies;
extern Py_ssize_t off_w_event, off_w_since, off_w_current, off_w_handled, off_w_done;
extern PyObject *s_closing, *s_router, *s_routes, *s_observer, *s_outlet, *s_accepting,
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

extern PyTypeObject *count_type, *queue_type;
extern int count_inline, queue_inline;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static inline void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
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

/* _speedups.c */
int slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset);
double perf_counter(void);
Py_ssize_t queue_size(PyObject *queue);
int call_discard(PyObject *callable, PyObject *const *args, size_t nargs);
int count_next(PyObject *counter); /* next(counter), the value unread */

/* _speedups_lane.c: the firing side's mailboxes */
extern PyTypeObject Lane_Type;
int deliver(PyObject *bus, PyObject *handler, PyObject *args, PyObject *kwargs, PyObject *name);

/* _speedups_fire.c */
extern PyTypeObject FireEvent_Type;

/* _speedups_drain.c */
PyObject *drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
int slot_increment(PyObject *obj, Py_ssize_t off);
PyObject *mark_start(PyObject *worker, double *start);

/* _speedups_call.c: the service's side of a call */
PyObject *configure_calls(PyObject *module, PyObject *args);
int call_runnable(PyObject *item);
int run_call(PyObject *worker, PyObject *item, PyObject *finished, PyObject *handler,
             PyObject *stats, PyObject *fn);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
