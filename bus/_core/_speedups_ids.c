/* Random ids and packed heads as 64-bit words, and the caller's name (see _speedups.c).
 *
 * The hooks draw every trace and span id from random.getrandbits, as the
 * Python code does, so that both paths give the same ids in the same order.
 * Calling it makes a Python int from a byte array (a byte at a time) that
 * the hooks then take apart with shifts, each a new int: about half of what
 * the firing side of a traced event cost. draw_words() makes the same draws
 * from the same generator without the ints: the words that getrandbits
 * would put into its int, least significant first. CPython's Mersenne
 * Twister keeps its state in the instance (_randommodule.c: an int index
 * and 624 words after the object's head; the same in 3.11, 3.12 and 3.13),
 * and its getrandbits(k) fills an int with genrand_uint32() words from the
 * least significant up. configure_ids() probes that layout on instances of
 * its own, against getrandbits, before any id is drawn this way; where it
 * differs (another version, a big-endian machine, a free-threaded build, a
 * getrandbits that is not _random's), every draw calls getrandbits and
 * reads its int's words (_speedups_long.h).
 *
 * long_from_words() makes a non-negative int from its words with its digits
 * written where they lie, as long_from_128 in _speedups_long.h does for two.
 *
 * caller_name() is _hub._caller(), the name a thread records its work
 * under, read from the thread local's dict for this thread without the
 * local's own lookup of that dict.
 */
#include "_speedups.h"
#include "_speedups_long.h"

#define MT_N 624
#define MT_M 397

/* _random.Random as CPython lays it out (Modules/_randommodule.c). */
typedef struct {
    PyObject_HEAD
    int index;
    uint32_t state[MT_N];
} mt_layout;

static PyObject *mt_bits;    /* the getrandbits these draws replace (a bound method) */
static PyObject *mt_self;    /* its instance, when its layout is mt_layout */
static PyCFunction mt_meth;  /* _random.Random.getrandbits's C function */
static PyTypeObject *mt_type; /* _random.Random */
static PyObject *caller_tls, *caller_fn, *s_caller, *s_dict, *caller_tls_key; /* see caller_name */

/* genrand_uint32() of _randommodule.c, on an instance of mt_layout. */
static uint32_t
mt_next(mt_layout *self)
{
    static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
    uint32_t *mt = self->state, y;
    if (self->index >= MT_N) { /* the next 624 words at once */
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        y = (mt[MT_N - 1] & 0x80000000U) | (mt[0] & 0x7fffffffU);
        mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
        self->index = 0;
    }
    y = mt[self->index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

/* getrandbits(64 * n) of an instance of mt_layout, as its words. */
static inline void
mt_words(mt_layout *self, int n, uint64_t *words)
{
    for (int i = 0; i < n; i++) {
        uint64_t low = mt_next(self);
        words[i] = low | (uint64_t)mt_next(self) << 32;
    }
}

/* Whether the instance's index is one genrand_uint32 could have left. */
static inline int
mt_sane(PyObject *self)
{
    int index = ((mt_layout *)self)->index;
    return index >= 0 && index <= MT_N;
}

int
draw_words(int n, uint64_t *words)
{
    if (mt_self != NULL && mt_sane(mt_self)) {
        mt_words((mt_layout *)mt_self, n, words);
        return 0;
    }
    if (mt_bits == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ids drawn before configure_hub()");
        return -1;
    }
    PyObject *bits = PyLong_FromLong(64L * n);
    PyObject *drawn = bits == NULL ? NULL : PyObject_Vectorcall(mt_bits, &bits, 1, NULL);
    Py_XDECREF(bits);
    if (drawn == NULL) {
        return -1;
    }
    int ok = PyLong_CheckExact(drawn) && long_words(drawn, words, n);
    Py_DECREF(drawn);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "random.getrandbits gave no int of the bits asked");
        return -1;
    }
    return 0;
}

PyObject *
long_from_words(const uint64_t *words, int n)
{
    while (n > 0 && words[n - 1] == 0) {
        n--;
    }
    if (n <= 1) {
        return PyLong_FromUnsignedLongLong(n ? words[0] : 0);
    }
    if (n == 2) {
        return long_from_128(words[1], words[0]);
    }
#if defined(__GNUC__)
    int top = 64 - __builtin_clzll(words[n - 1]);
#else
    int top = 0;
    for (uint64_t rest = words[n - 1]; rest; rest >>= 1) {
        top++;
    }
#endif
    size_t bits = (size_t)(n - 1) * 64 + (size_t)top;
    Py_ssize_t count = (Py_ssize_t)((bits + PyLong_SHIFT - 1) / PyLong_SHIFT);
    digit *digits;
    PyLongObject *v = long_of_digits(count, &digits);
    if (v == NULL) {
        return NULL;
    }
    /* The words' bits, streamed into digits: acc holds `have` of them. */
    uint64_t acc = words[0];
    int have = 64, next = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (have >= PyLong_SHIFT) {
            digits[i] = (digit)(acc & PyLong_MASK);
            acc >>= PyLong_SHIFT;
            have -= PyLong_SHIFT;
        }
        else {
            uint64_t more = next < n ? words[next++] : 0;
            digits[i] = (digit)((acc | more << have) & PyLong_MASK);
            acc = more >> (PyLong_SHIFT - have);
            have += 64 - PyLong_SHIFT;
        }
    }
    return (PyObject *)v;
}

/* Whether draws on a fresh instance seeded with seed, made in C, are what
 * its twin's getrandbits gives, across more than one refill of the state:
 * 1, 0 (they differ: no C draws), -1 on error. */
static int
probe(PyObject *seed)
{
    PyObject *mine = PyObject_CallOneArg((PyObject *)mt_type, seed);
    PyObject *twin = mine == NULL ? NULL : PyObject_CallOneArg((PyObject *)mt_type, seed);
    PyObject *bits = NULL;
    int rc = twin == NULL ? -1 : 1;
    for (int i = 0; rc == 1 && i < 2 * MT_N / 3; i++) {
        int n = 1 + i % 3; /* 64, 128 and 192 bits */
        uint64_t words[3], theirs[3];
        PyObject *drawn = NULL;
        if (!mt_sane(mine)) {
            rc = 0;
            break;
        }
        mt_words((mt_layout *)mine, n, words);
        if ((bits = PyLong_FromLong(64L * n)) == NULL ||
            (drawn = PyObject_CallMethod(twin, "getrandbits", "O", bits)) == NULL) {
            rc = -1;
        }
        else if (!PyLong_CheckExact(drawn) || !long_words(drawn, theirs, n) ||
                 memcmp(words, theirs, sizeof(uint64_t) * (size_t)n) != 0) {
            rc = 0;
        }
        Py_CLEAR(bits);
        Py_XDECREF(drawn);
    }
    Py_XDECREF(mine);
    Py_XDECREF(twin);
    return rc;
}

int
configure_ids(PyObject *bits_fn, PyObject *tls, PyObject *caller)
{
    if (mt_bits != NULL) {
        return 0;
    }
    if ((s_caller = PyUnicode_InternFromString("caller")) == NULL ||
        (s_dict = PyUnicode_InternFromString("__dict__")) == NULL ||
        (caller_tls_key = PyUnicode_FromString("bus._speedups: the caller's local dict")) == NULL) {
        return -1;
    }
    caller_tls = Py_NewRef(tls);
    caller_fn = Py_NewRef(caller);
    mt_bits = Py_NewRef(bits_fn);
#if PY_LITTLE_ENDIAN && !defined(Py_GIL_DISABLED)
    /* Only a bound getrandbits of _random.Random (or a subclass) qualifies:
     * its instance's state is what the draws read and advance. */
    PyObject *module = PyImport_ImportModule("_random");
    PyObject *type = module == NULL ? NULL : PyObject_GetAttrString(module, "Random");
    Py_XDECREF(module);
    if (type == NULL) {
        return -1;
    }
    if (!PyType_Check(type) || ((PyTypeObject *)type)->tp_basicsize < (Py_ssize_t)sizeof(mt_layout)) {
        Py_DECREF(type);
        return 0;
    }
    mt_type = (PyTypeObject *)type;
    PyObject *descr = PyObject_GetAttrString(type, "getrandbits");
    if (descr == NULL) {
        return -1;
    }
    int usable = Py_IS_TYPE(descr, &PyMethodDescr_Type) && PyCFunction_Check(bits_fn);
    if (usable) {
        mt_meth = ((PyMethodDescrObject *)descr)->d_method->ml_meth;
    }
    Py_DECREF(descr);
    if (!usable) {
        return 0;
    }
    PyObject *self = PyCFunction_GET_SELF(bits_fn);
    if (((PyCFunctionObject *)bits_fn)->m_ml->ml_meth != mt_meth || self == NULL ||
        !PyObject_TypeCheck(self, mt_type)) {
        return 0;
    }
    PyObject *seeds[] = {PyLong_FromLong(0), PyLong_FromLong(20261202)};
    int rc = seeds[0] == NULL || seeds[1] == NULL ? -1 : 1;
    for (int i = 0; rc == 1 && i < 2; i++) {
        rc = probe(seeds[i]);
    }
    Py_XDECREF(seeds[0]);
    Py_XDECREF(seeds[1]);
    if (rc == 1) {
        mt_self = Py_NewRef(self);
    }
    return rc < 0 ? -1 : 0;
#else
    return 0;
#endif
}

/* -- the caller's name ------------------------------------------------------------------ */

/* The thread local's __dict__ for this thread (see caller_name): borrowed
 * from the thread state's dict, NULL (no error) when it cannot be had. */
static PyObject *
caller_dict(void)
{
    PyObject *states = PyThreadState_GetDict();
    if (states == NULL) {
        return NULL;
    }
    PyObject *own = PyDict_GetItemWithError(states, caller_tls_key);
    if (own == NULL && !PyErr_Occurred() &&
        (own = PyObject_GetAttr(caller_tls, s_dict)) != NULL) {
        int failed = !PyDict_CheckExact(own) || PyDict_SetItem(states, caller_tls_key, own);
        Py_DECREF(own); /* states holds it */
        if (failed) {
            own = NULL;
        }
    }
    if (own == NULL) {
        PyErr_Clear(); /* the local's own lookup, as ever */
    }
    return own;
}

#if defined(__GNUC__)
/* What this OS thread last read: the thread state (by its id: a thread
 * state is made and dropped per call by threads that Python did not
 * start), its local dict (alive while that thread state is) and the name
 * in it while the dict's tag holds. */
static __thread struct {
    uint64_t state;
    PyObject *own, *name;
    uint64_t tag;
} caller_seen;
#endif

/* _caller(): the name this thread records as its own, kept in a thread
 * local. Its __dict__ for this thread is kept in the thread state's own
 * dict (released with it): its "caller" is the attribute (the local's type
 * has no descriptor of that name), read without the local's lookup of this
 * thread's dict every time. */
PyObject *
caller_name(void)
{
    PyObject *own;
#if defined(__GNUC__)
    uint64_t state = PyThreadState_GetID(PyThreadState_Get());
    if (caller_seen.own != NULL && caller_seen.state == state) {
        own = caller_seen.own;
        uint64_t tag = DICT_TAG(own);
        if (tag != TAG_UNKNOWN && tag == caller_seen.tag) {
            return Py_NewRef(caller_seen.name);
        }
    }
    else {
        caller_seen.own = NULL;
        if ((own = caller_dict()) != NULL) {
            caller_seen.own = own;
            caller_seen.state = state;
        }
    }
    caller_seen.tag = TAG_UNKNOWN;
#else
    own = caller_dict();
#endif
    if (own != NULL) {
        PyObject *name = PyDict_GetItemWithError(own, s_caller);
        if (name != NULL) {
#if defined(__GNUC__)
            caller_seen.name = name;
            caller_seen.tag = DICT_TAG(own);
#endif
            return Py_NewRef(name);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
        return PyObject_CallNoArgs(caller_fn); /* works it out, and keeps it */
    }
    PyObject *name = PyObject_GetAttr(caller_tls, s_caller);
    if (name == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        name = PyObject_CallNoArgs(caller_fn); /* works it out, and keeps it */
    }
    return name;
}

/* -- draws ------------------------------------------------------------------------------ */

PyObject *
draw(PyObject *bits)
{
    /* the hooks' own sizes: 64, 128 or 192 bits */
    long n = PyLong_CheckExact(bits) ? PyLong_AsLong(bits) : 0;
    if (n == 64 || n == 128 || n == 192) {
        uint64_t words[3];
        return draw_words((int)(n / 64), words) < 0 ? NULL : long_from_words(words, (int)(n / 64));
    }
    PyErr_Clear();
    if (mt_bits == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ids drawn before configure_hub()");
        return NULL;
    }
    return PyObject_Vectorcall(mt_bits, &bits, 1, NULL);
}

PyObject *
ids_in_c(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(mt_self != NULL);
}
