/* Reading a non-negative int of a few hundred bits as 64-bit words, and
 * making one of up to 128 bits, without shifts or byte arrays.
 *
 * Shared by both extensions (bus/_core/_speedups*.c and
 * bus/_observe/_speedups_otlp*.c): an event's packed head (bus/_observe/_heads.py)
 * is split into its fields, and trace ids (128 bits) and span ids (64) are
 * written as hex, a few times per traced event. `head >> k & mask` in C
 * makes a new int per shift (PyNumber_Rshift) and reading 64 bits of an int
 * goes through a byte array (CPython 3.11): most of what unpacking a head
 * cost. These read CPython's digits where they lie (cpython/longintrepr.h,
 * which Python.h includes: `ob_size` in 3.11, `lv_tag` from 3.12).
 */
#ifndef BUS_SPEEDUPS_LONG_H
#define BUS_SPEEDUPS_LONG_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

/* A plain int (an exact int) >= 0 of at most 64 * n bits as n words, least
 * significant first: 1, or 0 when it is negative or does not fit. */
static inline int
long_words(PyObject *value, uint64_t *words, int n)
{
    PyLongObject *v = (PyLongObject *)value;
#if PY_VERSION_HEX >= 0x030C0000
    uintptr_t tag = v->long_value.lv_tag;
    if ((tag & _PyLong_SIGN_MASK) == 2) {
        return 0; /* negative */
    }
    Py_ssize_t count = (Py_ssize_t)(tag >> _PyLong_NON_SIZE_BITS);
    const digit *digits = v->long_value.ob_digit;
#else
    Py_ssize_t count = Py_SIZE(v);
    if (count < 0) {
        return 0;
    }
    const digit *digits = v->ob_digit;
#endif
    /* The digits' bits, streamed into the words: acc holds `have` bits. */
    uint64_t acc = 0;
    int have = 0, at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t d = digits[i];
        acc |= d << have;
        have += PyLong_SHIFT;
        if (have >= 64) {
            if (at == n) {
                return 0;
            }
            words[at++] = acc;
            have -= 64;
            acc = have ? d >> (PyLong_SHIFT - have) : 0;
        }
    }
    if (have && acc) {
        if (at == n) {
            return 0;
        }
        words[at++] = acc;
    }
    while (at < n) {
        words[at++] = 0;
    }
    return 1;
}

/* The digits of a plain int (an exact int) >= 0, least significant first,
 * and their count: 1, or 0 when it is negative. */
static inline int
long_digits(PyObject *value, const digit **digits, Py_ssize_t *count)
{
    PyLongObject *v = (PyLongObject *)value;
#if PY_VERSION_HEX >= 0x030C0000
    uintptr_t tag = v->long_value.lv_tag;
    if ((tag & _PyLong_SIGN_MASK) == 2) {
        return 0;
    }
    *count = (Py_ssize_t)(tag >> _PyLong_NON_SIZE_BITS);
    *digits = v->long_value.ob_digit;
#else
    if (Py_SIZE(v) < 0) {
        return 0;
    }
    *count = Py_SIZE(v);
    *digits = v->ob_digit;
#endif
    return 1;
}

/* The `width` (1 to 64) bits of an int's digits from bit `at` on: only the
 * digits that hold them are read (at most four of 30 bits), in straight
 * code the compiler unrolls. long_words, which streams every digit of the
 * int into words (with a test per digit), and then a shift per field, cost
 * twice as much for a head's five fields. */
static inline uint64_t
digits_field(const digit *digits, Py_ssize_t count, size_t at, int width)
{
    Py_ssize_t i = (Py_ssize_t)(at / PyLong_SHIFT);
    int off = (int)(at % PyLong_SHIFT);
    if (i >= count) {
        return 0;
    }
    uint64_t value = (uint64_t)digits[i] >> off;
    int got = PyLong_SHIFT - off; /* where the next digit's bits go */
    for (int k = 1; k <= (64 + PyLong_SHIFT - 1) / PyLong_SHIFT; k++) {
        if (got < width && i + k < count) { /* got < 64: a defined shift */
            value |= (uint64_t)digits[i + k] << got;
        }
        got += PyLong_SHIFT;
    }
    return width == 64 ? value : value & ((1ULL << width) - 1);
}

/* The number of bits of an int's digits (count > 0: its top digit is not 0). */
static inline size_t
digits_bits(const digit *digits, Py_ssize_t count)
{
    if (count == 0) {
        return 0;
    }
    size_t bits = (size_t)(count - 1) * PyLong_SHIFT;
    digit top = digits[count - 1];
#if defined(__GNUC__)
    return top ? bits + 32 - (size_t)__builtin_clz((unsigned int)top) : bits;
#else
    for (; top; top >>= 1) {
        bits++;
    }
    return bits;
#endif
}

/* The `width` (1 to 64) bits of words[] from bit `at` on. */
static inline uint64_t
long_field(const uint64_t *words, int n, size_t at, int width)
{
    size_t w = at / 64, off = at % 64;
    uint64_t value = w < (size_t)n ? words[w] >> off : 0;
    if (off && w + 1 < (size_t)n) {
        value |= words[w + 1] << (64 - off);
    }
    return width == 64 ? value : value & ((1ULL << width) - 1);
}

/* A new positive int of count digits, to be written in *digits (all of
 * them: _PyLong_New leaves them unset). */
static inline PyLongObject *
long_of_digits(Py_ssize_t count, digit **digits)
{
    PyLongObject *v = _PyLong_New(count);
    if (v != NULL) {
#if PY_VERSION_HEX >= 0x030C0000
        *digits = v->long_value.ob_digit;
#else
        *digits = v->ob_digit;
#endif
    }
    return v;
}

/* The int high * 2**64 + low: a new reference. Its digits are written
 * where they lie (_PyLong_New makes a positive int of that many digits):
 * _PyLong_FromByteArray goes a byte at a time. */
static inline PyObject *
long_from_128(uint64_t high, uint64_t low)
{
    if (high == 0) {
        return PyLong_FromUnsignedLongLong(low);
    }
#if defined(__GNUC__)
    int bits = 128 - __builtin_clzll(high);
#else
    int bits = 64;
    for (uint64_t rest = high; rest; rest >>= 1) {
        bits++;
    }
#endif
    Py_ssize_t count = (bits + PyLong_SHIFT - 1) / PyLong_SHIFT;
    digit *digits;
    PyLongObject *v = long_of_digits(count, &digits);
    if (v == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        int at = (int)i * PyLong_SHIFT;
        uint64_t part = at < 64 ? low >> at : high >> (at - 64);
        if (at < 64 && at + PyLong_SHIFT > 64) {
            part |= high << (64 - at);
        }
        digits[i] = (digit)(part & PyLong_MASK);
    }
    return (PyObject *)v;
}

#endif
