/* JSON text for the C encoder of trace-file lines (_speedups_otlp.c): a
 * growing UTF-8 buffer, strings escaped as json escapes them, numbers as
 * Python writes them, ids as hex. */
#include "_speedups_otlp.h"

#include <limits.h>

/* -- a growing UTF-8 buffer ---------------------------------------------------- */


int
buf_grow(Buf *b, Py_ssize_t more)
{
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < more) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}



static const char HEX[] = "0123456789abcdef";

/* Every byte's two hex digits, "000102...feff", made by otlp_text_init(). */
static char HEX_PAIRS[512];

#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
/* The 16 hex digits of 64 bits at out, all at once: the bytes most
 * significant first, each split into its two nibbles side by side, '0'
 * added to every nibble and 'a' - '0' - 10 more to those past 9. SSE2 is
 * part of every x86-64. */
static inline void
hex16(char *out, uint64_t value)
{
    __m128i bytes = _mm_cvtsi64_si128((long long)__builtin_bswap64(value));
    __m128i low4 = _mm_set1_epi8(0x0f);
    __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
    __m128i nibbles = _mm_unpacklo_epi8(high, _mm_and_si128(bytes, low4));
    __m128i letters = _mm_cmpgt_epi8(nibbles, _mm_set1_epi8(9));
    nibbles = _mm_add_epi8(nibbles, _mm_set1_epi8('0'));
    nibbles = _mm_add_epi8(nibbles, _mm_and_si128(letters, _mm_set1_epi8('a' - '0' - 10)));
    _mm_storeu_si128((__m128i *)out, nibbles);
}
#define HEX_WORDS 1
#endif

/* `value` as `digits` (an even number) lower-case hex digits: 16 (an id, or
 * half a trace id) at once where the compiler allows, else a byte at a time. */
int
buf_hex(Buf *b, uint64_t value, int digits)
{
    if (b->cap - b->len < digits && buf_grow(b, digits) < 0) {
        return -1;
    }
    char *end = b->data + b->len + digits;
#ifdef HEX_WORDS
    if (digits == 16) {
        hex16(end - 16, value);
        b->len += 16;
        return 0;
    }
#endif
    for (int i = 0; i < digits; i += 2) {
        memcpy(end -= 2, HEX_PAIRS + (value & 0xff) * 2, 2);
        value >>= 8;
    }
    b->len += digits;
    return 0;
}

static const char DIGIT_PAIRS[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* The decimal digits of `magnitude`, right-aligned to `end`; where they begin. */
static char *
digits_of(unsigned long long magnitude, char *end)
{
    char *p = end;
    while (magnitude >= 100) {
        unsigned pair = (unsigned)(magnitude % 100) * 2;
        magnitude /= 100;
        *--p = DIGIT_PAIRS[pair + 1];
        *--p = DIGIT_PAIRS[pair];
    }
    if (magnitude >= 10) {
        *--p = DIGIT_PAIRS[magnitude * 2 + 1];
        *--p = DIGIT_PAIRS[magnitude * 2];
    }
    else {
        *--p = (char)('0' + magnitude);
    }
    return p;
}

/* Exactly 8 decimal digits of `value` (< 10**8) at p: 32-bit halves and
 * pairs, no loop. */
static inline void
put8(char *p, uint32_t value)
{
    uint32_t high = value / 10000, low = value % 10000;
    memcpy(p, DIGIT_PAIRS + (high / 100) * 2, 2);
    memcpy(p + 2, DIGIT_PAIRS + (high % 100) * 2, 2);
    memcpy(p + 4, DIGIT_PAIRS + (low / 100) * 2, 2);
    memcpy(p + 6, DIGIT_PAIRS + (low % 100) * 2, 2);
}

/* The digits of a value below 10**8 at p, as many as it has; the end.
 * Up to four digits (a flag, a kind, the head of a time) by pairs; p has
 * room for 8 bytes more. */
static inline char *
put_small(char *p, uint32_t value)
{
    if (value < 100) {
        if (value < 10) {
            *p = (char)('0' + value);
            return p + 1;
        }
        memcpy(p, DIGIT_PAIRS + value * 2, 2);
        return p + 2;
    }
    if (value < 10000) {
        if (value < 1000) {
            *p = (char)('0' + value / 100);
            memcpy(p + 1, DIGIT_PAIRS + (value % 100) * 2, 2);
            return p + 3;
        }
        memcpy(p, DIGIT_PAIRS + (value / 100) * 2, 2);
        memcpy(p + 2, DIGIT_PAIRS + (value % 100) * 2, 2);
        return p + 4;
    }
    char text[16];
    char *first = digits_of(value, text + 8);
    memcpy(p, first, 8); /* a fixed length: the bytes past the digits are overwritten */
    return p + (text + 8 - first);
}

/* A time in ns has 19 digits: in 8-digit pieces, each of 32-bit arithmetic,
 * rather than a 64-bit division per pair. */
int
buf_int(Buf *b, long long value)
{
    /* 20 characters at most, and put_small's 8-byte copy past them. */
    if (b->cap - b->len < 32 && buf_grow(b, 32) < 0) {
        return -1;
    }
    char *p = b->data + b->len;
    /* The magnitude as unsigned: -LLONG_MIN does not fit a long long. */
    unsigned long long magnitude = (unsigned long long)value;
    if (value < 0) {
        *p++ = '-';
        magnitude = 0ULL - magnitude;
    }
    if (magnitude < 100000000ULL) {
        p = put_small(p, (uint32_t)magnitude);
    }
    else {
        unsigned long long high = magnitude / 100000000ULL;
        uint32_t low = (uint32_t)(magnitude % 100000000ULL);
        if (high < 100000000ULL) {
            p = put_small(p, (uint32_t)high);
        }
        else {
            p = put_small(p, (uint32_t)(high / 100000000ULL));
            put8(p, (uint32_t)(high % 100000000ULL));
            p += 8;
        }
        put8(p, low);
        p += 8;
    }
    b->len = p - b->data;
    return 0;
}

/* float.__repr__, which is what the Python code writes (`{value!r}`). */
int
buf_float(Buf *b, double value)
{
    char *text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return -1;
    }
    int rc = buf_put(b, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return rc;
}

/* What a byte of UTF-8 text needs in a JSON string: nothing (0), an escape,
 * or nothing but it is not ASCII. */
enum { ESCAPED = 1, NOT_ASCII = 2 };
static unsigned char byte_class[256]; /* made by otlp_text_init() */

/* UTF-8 bytes as the body of a JSON string, escaped as json's
 * encode_basestring escapes them (ensure_ascii=False): the quote, the
 * backslash, and the control characters below 0x20, short forms where JSON
 * has them and \u00XX with lower-case hex otherwise. Bytes of multi-byte
 * characters are all >= 0x80, so copying them whole keeps the characters. */
int
buf_escaped(Buf *b, const char *text, Py_ssize_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (!(byte_class[c] & ESCAPED)) {
            b->ascii &= !byte_class[c];
            continue;
        }
        if (buf_put(b, text + start, i - start) < 0) {
            return -1;
        }
        start = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        Py_ssize_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = HEX[c >> 4];
            esc[5] = HEX[c & 0xf];
            len = 6;
        }
        if (buf_put(b, esc, len) < 0) {
            return -1;
        }
    }
    return buf_put(b, text + start, n - start);
}

/* The buffer as a str: copied as is when it is all ASCII. */
PyObject *
buf_str(Buf *b)
{
    if (!b->ascii) {
        return PyUnicode_DecodeUTF8(b->data, b->len, "strict");
    }
    PyObject *text = PyUnicode_New(b->len, 127);
    if (text != NULL) {
        memcpy(PyUnicode_DATA(text), b->data, (size_t)b->len);
    }
    return text;
}

/* -- reading a record's values: 1 read, 0 not ours (the Python code's), -1 error */

/* A str's UTF-8: its own bytes when it is ASCII, else a new bytes object in
 * *owner. 0 for a lone surrogate, which UTF-8 cannot carry: the Python code
 * escapes those its own way. */
int
utf8_of(PyObject *text, const char **data, Py_ssize_t *n, PyObject **owner)
{
    *owner = NULL;
    if (PyUnicode_IS_ASCII(text)) {
        *data = (const char *)PyUnicode_DATA(text);
        *n = PyUnicode_GET_LENGTH(text);
        return 1;
    }
    PyObject *bytes = PyUnicode_AsUTF8String(text);
    if (bytes == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    *owner = bytes;
    *data = PyBytes_AS_STRING(bytes);
    *n = PyBytes_GET_SIZE(bytes);
    return 1;
}

/* A str as a JSON string, quotes included. */
int
put_string(Buf *b, PyObject *text)
{
    const char *data;
    Py_ssize_t n;
    PyObject *owner;
    int found = utf8_of(text, &data, &n, &owner);
    if (found <= 0) {
        return found;
    }
    int rc = -1;
    if (PUT(b, "\"") == 0 && buf_escaped(b, data, n) == 0 && PUT(b, "\"") == 0) {
        rc = 1;
    }
    Py_XDECREF(owner);
    return rc;
}

/* A plain int in [0, 2**64), read from its digits (_speedups_long.h):
 * PyLong_AsUnsignedLongLong goes through a byte array (CPython 3.11), and a
 * random id is at least 2**63 half the time. */
/* An exact int >= 0 of at most 64 bits: 1 and *out, else 0. CPython 3.11's
 * 30-bit digits are at most three, combined at once; elsewhere, or past
 * them, long_words streams them. */
static inline int
u64_of(PyObject *value, uint64_t *out)
{
#if PY_VERSION_HEX < 0x030C0000 && PYLONG_BITS_IN_DIGIT == 30
    const digit *d = ((PyLongObject *)value)->ob_digit;
    switch (Py_SIZE(value)) {
    case 0:
        *out = 0;
        return 1;
    case 1:
        *out = d[0];
        return 1;
    case 2:
        *out = d[0] | (uint64_t)d[1] << 30;
        return 1;
    case 3:
        if (d[2] < 16) { /* 4 bits of it: 64 in all */
            *out = d[0] | (uint64_t)d[1] << 30 | (uint64_t)d[2] << 60;
            return 1;
        }
        return 0;
    default:
        break;
    }
#endif
    return long_words(value, out, 1);
}

int
as_u64(PyObject *value, uint64_t *out)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    /* Negative, or past 64 bits: the Python code writes those its own way. */
    return u64_of(value, out);
}

int
as_i64(PyObject *value, long long *out)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    /* Times are >= 0: read from the digits, as ids are. */
    uint64_t word;
    if (u64_of(value, &word) && word <= (uint64_t)LLONG_MAX) {
        *out = (long long)word;
        return 1;
    }
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow) {
        return 0;
    }
    return *out == -1 && PyErr_Occurred() ? -1 : 1;
}

/* A trace id: 128 bits, as 32 hex digits. */
int
put_trace_id(Buf *b, PyObject *value)
{
    uint64_t words[2];
    if (!PyLong_CheckExact(value) || !long_words(value, words, 2)) {
        return 0; /* negative, or past 128 bits: the Python code writes those */
    }
    if (buf_hex(b, words[1], 16) < 0 || buf_hex(b, words[0], 16) < 0) {
        return -1;
    }
    return 1;
}

/* repr(n / 1e6) for |n| < 10**15, without the shortest-digits search of
 * float.__repr__: n / 1e6 is the double nearest to the decimal n * 10**-6,
 * which has at most 15 significant digits, and every decimal of at most 15
 * (DBL_DIG) names a different double; so no shorter decimal names the same
 * double, and the digits repr finds are those of n, trailing zeros dropped.
 * The layout is repr's: an exponent below 1e-4 (decimal point position
 * <= -4) or from 1e16, else "0.000ddd", "dd.ddd" or "ddd.0". */
int
buf_micros(Buf *b, long long n)
{
    char text[48];
    char digits[24];
    char *end = digits + sizeof(digits);
    unsigned long long magnitude = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    if (magnitude == 0) {
        return n < 0 ? PUT(b, "-0.0") : PUT(b, "0.0");
    }
    char *first = digits_of(magnitude, end);
    int count = (int)(end - first);
    int point = count - 6; /* where the decimal point goes, from the first digit */
    while (end[-1] == '0') {
        end--;
    }
    count = (int)(end - first);
    char *p = text;
    if (n < 0) {
        *p++ = '-';
    }
    if (point <= -4) {
        *p++ = first[0];
        if (count > 1) {
            *p++ = '.';
            memcpy(p, first + 1, (size_t)(count - 1));
            p += count - 1;
        }
        int exponent = point - 1;
        *p++ = 'e';
        *p++ = '-';
        exponent = -exponent;
        *p++ = (char)('0' + exponent / 10);
        *p++ = (char)('0' + exponent % 10);
    }
    else if (point <= 0) {
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -point; i++) {
            *p++ = '0';
        }
        memcpy(p, first, (size_t)count);
        p += count;
    }
    else if (point < count) {
        memcpy(p, first, (size_t)point);
        p += point;
        *p++ = '.';
        memcpy(p, first + point, (size_t)(count - point));
        p += count - point;
    }
    else {
        memcpy(p, first, (size_t)count);
        p += count;
        for (int i = count; i < point; i++) {
            *p++ = '0';
        }
        *p++ = '.';
        *p++ = '0';
    }
    return buf_put(b, text, p - text);
}

int
otlp_text_init(void)
{
    for (int i = 0; i < 256; i++) {
        HEX_PAIRS[2 * i] = HEX[i >> 4];
        HEX_PAIRS[2 * i + 1] = HEX[i & 0xf];
        byte_class[i] = i < 0x20 || i == '"' || i == '\\' ? ESCAPED : i >= 0x80 ? NOT_ASCII : 0;
    }
    return 0;
}
