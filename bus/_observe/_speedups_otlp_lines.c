/* The lines of a trace file made of a batch's spans, for the C encoder of
 * trace-file lines (_speedups_otlp.c, write_many): the spans' text, written
 * one after another into one buffer with their ends marked, framed as whole
 * TracesData lines and handed out as the file's bytes in one object. */
#include "_speedups_otlp.h"

static const char HEX[] = "0123456789abcdef";

int
marks_add(Marks *m, Py_ssize_t end, int flags)
{
    if (m->n == m->cap) {
        Py_ssize_t cap = m->cap ? m->cap * 2 : 512;
        Mark *at = PyMem_Realloc(m->at, (size_t)cap * sizeof(Mark));
        if (at == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        m->at = at;
        m->cap = cap;
    }
    m->at[m->n].end = end;
    m->at[m->n].flags = flags;
    m->n++;
    return 0;
}

/* \uXXXX of a UTF-16 code unit at p (unless p is NULL); its length. */
static Py_ssize_t
put_unit(char *p, unsigned unit)
{
    if (p != NULL) {
        p[0] = '\\';
        p[1] = 'u';
        p[2] = HEX[(unit >> 12) & 0xf];
        p[3] = HEX[(unit >> 8) & 0xf];
        p[4] = HEX[(unit >> 4) & 0xf];
        p[5] = HEX[unit & 0xf];
    }
    return 6;
}

/* UTF-8 text (lone surrogates "surrogatepass"-encoded) written as
 * json.dumps(..., ensure_ascii=True) writes the same JSON: every character
 * past '~' as \uXXXX, past U+FFFF as a surrogate pair. What JSON itself
 * escapes (quote, backslash, control characters) is escaped already, the
 * same way both modes do. At p, unless p is NULL; its length either way. */
static Py_ssize_t
put_ascii(char *p, const char *text, Py_ssize_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    Py_ssize_t len = 0;
    for (Py_ssize_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x7f) {
            if (p != NULL) {
                p[len] = (char)c;
            }
            len++;
            i++;
            continue;
        }
        int more = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
        uint32_t code = more == 0 ? c : more == 1 ? c & 0x1f : more == 2 ? c & 0x0f : c & 0x07;
        for (int k = 1; k <= more; k++) {
            /* Our own UTF-8, whole; a cut sequence would read as zero bits. */
            code = (code << 6) | (i + k < n ? s[i + k] & 0x3f : 0);
        }
        i += 1 + more;
        if (code >= 0x10000) {
            code -= 0x10000;
            len += put_unit(p ? p + len : NULL, 0xd800 | (code >> 10));
            len += put_unit(p ? p + len : NULL, 0xdc00 | (code & 0x3ff));
        }
        else {
            len += put_unit(p ? p + len : NULL, code);
        }
    }
    return len;
}

/* Text copied as it is, or escaped as put_ascii does. */
static Py_ssize_t
put_text(char *p, const char *text, Py_ssize_t n, int escape)
{
    if (escape) {
        return put_ascii(p, text, n);
    }
    if (p != NULL) {
        memcpy(p, text, (size_t)n);
    }
    return n;
}

/* One line: the prefix, spans i to j - 1 of `text`, the end; at p (unless
 * NULL), its length either way. */
static Py_ssize_t
put_line(char *p, const Buf *text, const Mark *at, Py_ssize_t i, Py_ssize_t j,
         const char *prefix, Py_ssize_t prefix_len, int escape)
{
    static const char end[] = "]}]}]}\n";
    Py_ssize_t len = put_text(p, prefix, prefix_len, escape);
    Py_ssize_t start = i ? at[i - 1].end : 0;
    for (Py_ssize_t k = i; k < j; k++) {
        if (k > i) {
            if (p != NULL) {
                p[len] = ',';
            }
            len++;
        }
        len += put_text(p ? p + len : NULL, text->data + start, at[k].end - start, escape);
        start = at[k].end;
    }
    if (p != NULL) {
        memcpy(p + len, end, sizeof(end) - 1);
    }
    return len + (Py_ssize_t)sizeof(end) - 1;
}

/* The lines' ends (from span i, the span after the line) and whether the
 * line is escaped, for each line in turn. */
static Py_ssize_t
line_after(const Marks *m, Py_ssize_t i, int *escape)
{
    *escape = m->at[i].flags & SPAN_ESCAPE;
    for (i++; i < m->n && !(m->at[i].flags & SPAN_FIRST); i++) {
        *escape |= m->at[i].flags & SPAN_ESCAPE;
    }
    return i;
}

PyObject *
file_lines(const Buf *text, Marks *marks, const char *prefix, Py_ssize_t prefix_len)
{
    /* Where lines begin: as OtlpLines.file_bytes, by the UTF-8 bytes of the spans. */
    Py_ssize_t size = 0, start = 0;
    for (Py_ssize_t i = 0; i < marks->n; i++) {
        Py_ssize_t len = marks->at[i].end - start;
        if (i == 0 || size + len > LINE_TEXT) {
            marks->at[i].flags |= SPAN_FIRST;
            size = 0;
        }
        size += len + 1;
        start = marks->at[i].end;
    }
    Py_ssize_t total = 0;
    int escape;
    for (Py_ssize_t i = 0, j; i < marks->n; i = j) {
        j = line_after(marks, i, &escape);
        total += put_line(NULL, text, marks->at, i, j, prefix, prefix_len, escape);
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, total);
    if (data == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(data);
    for (Py_ssize_t i = 0, j; i < marks->n; i = j) {
        j = line_after(marks, i, &escape);
        p += put_line(p, text, marks->at, i, j, prefix, prefix_len, escape);
    }
    return data;
}
