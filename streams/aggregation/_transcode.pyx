# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Canonical events (v3, Confluent wire format) straight into ``warehouse.events`` binary COPY
rows, with no Python object per field: the loader's decode without fastavro.

The output is byte for byte what the Python path writes (``WireTimes.decode`` then
``rows.encode_row``, see ``tests/unit/aggregation/test_transcode.py``). The module knows one
schema: ``schemas/avro/canonical_event/v3.avsc``, named by :data:`SCHEMA_DIGEST` (the SHA-256
of its form without docs, as ``streams.aggregation.decode.schema_digest`` computes it); the
caller uses it only for records whose writer schema is that one.

It never refuses a record: anything it does not read with certainty — a truncated or
trailing body, a varint longer than 64 bits, a negative length, a union branch or boolean
out of range, invalid UTF-8, an ``int`` beyond 32 bits, a time whose microseconds overflow,
a v1/v2-style record with flat attributes (their JSON is built in Python) — is handed back
(``None``, or the batch's ``fallback``), and the Python path decides, with its own errors.
Every read is bounds-checked against the value's length.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

cdef extern from *:
    """
    static inline int p12_sub_overflow(int64_t a, int64_t b, int64_t *r) {
        return __builtin_sub_overflow(a, b, r);
    }
    static inline int p12_mul_overflow(int64_t a, int64_t b, int64_t *r) {
        return __builtin_mul_overflow(a, b, r);
    }
    """
    bint p12_sub_overflow(int64_t a, int64_t b, int64_t *r) noexcept nogil
    bint p12_mul_overflow(int64_t a, int64_t b, int64_t *r) noexcept nogil

SCHEMA_DIGEST = "6c8666b7e4d43411014b33ee427fdfb8ce7a860164a025c9a4b4b49af6b9f4a7"

DEF FIELDS = 24            # warehouse.COLUMNS
DEF PG_EPOCH_MS = 946684800000
DEF TEXT_OID = 25

# One string's place in the value: start and length, length -1 for null.
ctypedef struct Span:
    Py_ssize_t start
    Py_ssize_t length

ctypedef struct Reader:
    const uint8_t *data
    Py_ssize_t pos
    Py_ssize_t end
    bint bad

# What a v3 record holds that the row needs, as places in the value.
ctypedef struct Parsed:
    Span id, source, specversion, type_, subject, source_type, actor_id, trace_id, raw_ref
    int64_t time_us, ingested_us
    Py_ssize_t value_length
    Py_ssize_t tags_at        # where the tags array starts (read again when written)
    Py_ssize_t tags_count
    Py_ssize_t tags_bytes     # the items as COPY writes them: 4 + length each
    bint has_body
    int64_t time_unix_nano, observed_time_unix_nano
    int32_t severity_number
    Span severity_text, body, resource, attributes, log_trace_id, log_span_id

ctypedef struct Out:
    char *buf
    Py_ssize_t length
    Py_ssize_t capacity


cdef inline int64_t read_long(Reader *r) noexcept nogil:
    """A zig-zag varint of at most 64 bits; ``r.bad`` on EOF or anything longer."""
    cdef uint64_t n = 0
    cdef uint64_t b
    cdef int shift = 0
    while True:
        if r.pos >= r.end:
            r.bad = True
            return 0
        b = r.data[r.pos]
        r.pos += 1
        if shift == 63 and b > 1:
            r.bad = True
            return 0
        n |= (b & 0x7F) << shift
        if (b & 0x80) == 0:
            break
        shift += 7
    return <int64_t>((n >> 1) ^ (<uint64_t>0 - (n & 1)))


cdef inline bint valid_utf8(const uint8_t *s, Py_ssize_t n) noexcept nogil:
    """Python's strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF."""
    cdef Py_ssize_t i = 0
    cdef uint8_t c, c1
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        if c < 0xC2:
            return False
        if c < 0xE0:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
            continue
        if c < 0xF0:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if c == 0xE0:
                if c1 < 0xA0 or c1 > 0xBF:
                    return False
            elif c == 0xED:
                if c1 < 0x80 or c1 > 0x9F:
                    return False
            elif (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80:
                return False
            i += 3
            continue
        if c < 0xF5:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if c == 0xF0:
                if c1 < 0x90 or c1 > 0xBF:
                    return False
            elif c == 0xF4:
                if c1 < 0x80 or c1 > 0x8F:
                    return False
            elif (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
                return False
            i += 4
            continue
        return False
    return True


cdef inline void read_string(Reader *r, Span *span) noexcept nogil:
    cdef int64_t length = read_long(r)
    if r.bad:
        return
    if length < 0 or length > r.end - r.pos or not valid_utf8(r.data + r.pos, length):
        r.bad = True
        return
    span.start = r.pos
    span.length = length
    r.pos += length


cdef inline void read_optional_string(Reader *r, Span *span) noexcept nogil:
    """``["null", "string"]``."""
    cdef int64_t branch = read_long(r)
    if r.bad:
        return
    if branch == 0:
        span.start = 0
        span.length = -1
    elif branch == 1:
        read_string(r, span)
    else:
        r.bad = True


cdef inline int64_t read_block_count(Reader *r) noexcept nogil:
    """An array's or map's next block: its item count (a negative count is followed by the
    block's size in bytes, which is skipped)."""
    cdef int64_t count = read_long(r)
    if r.bad:
        return 0
    if count < 0:
        if count < -(<int64_t>1 << 62):
            r.bad = True
            return 0
        count = -count
        read_long(r)
    return count


cdef inline int64_t read_attribute_map(Reader *r) noexcept nogil:
    """Skip the flat ``attributes`` map (values ``[null, boolean, long, double, string]``);
    how many entries it held. Every entry takes at least two bytes, so a huge count ends at
    the value's end."""
    cdef int64_t count, k, branch, entries = 0
    cdef Span key
    while not r.bad:
        count = read_block_count(r)
        if r.bad or count == 0:
            break
        k = 0
        while k < count and not r.bad:
            read_string(r, &key)
            branch = read_long(r)
            if r.bad:
                break
            if branch == 1:
                if r.pos >= r.end or r.data[r.pos] > 1:
                    r.bad = True
                else:
                    r.pos += 1
            elif branch == 2:
                read_long(r)
            elif branch == 3:
                if r.end - r.pos < 8:
                    r.bad = True
                else:
                    r.pos += 8
            elif branch == 4:
                read_string(r, &key)
            elif branch != 0:
                r.bad = True
            entries += 1
            k += 1
    return entries


cdef inline void read_tags(Reader *r, Parsed *p) noexcept nogil:
    cdef int64_t count, k
    cdef Span item
    p.tags_at = r.pos
    p.tags_count = 0
    p.tags_bytes = 0
    while not r.bad:
        count = read_block_count(r)
        if r.bad or count == 0:
            break
        k = 0
        while k < count and not r.bad:
            read_string(r, &item)
            p.tags_count += 1
            p.tags_bytes += 4 + item.length
            k += 1


cdef inline int64_t timestamp_us(Reader *r, int64_t millis) noexcept nogil:
    """Milliseconds since 1970 as timestamptz's microseconds since 2000; ``r.bad`` when they
    overflow (the Python path then decides what such a value is)."""
    cdef int64_t since, micros
    if p12_sub_overflow(millis, PG_EPOCH_MS, &since) or p12_mul_overflow(since, 1000, &micros):
        r.bad = True
        return 0
    return micros


cdef bint parse(const uint8_t *data, Py_ssize_t length, uint32_t schema_id, Parsed *p) noexcept nogil:
    """Read one wire value of the v3 schema into ``p``; False for anything not read with
    certainty (module doc)."""
    cdef Reader r
    cdef int64_t branch, number, entries
    cdef Span skipped
    if length < 5 or data[0] != 0:
        return False
    if ((<uint32_t>data[1] << 24) | (<uint32_t>data[2] << 16) | (<uint32_t>data[3] << 8)
            | <uint32_t>data[4]) != schema_id:
        return False
    r.data = data
    r.pos = 5
    r.end = length
    p.value_length = length
    r.bad = False
    read_string(&r, &p.id)
    read_string(&r, &p.source)
    read_string(&r, &p.specversion)
    read_string(&r, &p.type_)
    number = read_long(&r)
    if r.bad:
        return False
    p.time_us = timestamp_us(&r, number)
    read_optional_string(&r, &p.subject)
    read_string(&r, &p.source_type)
    number = read_long(&r)
    if r.bad:
        return False
    p.ingested_us = timestamp_us(&r, number)
    read_optional_string(&r, &p.actor_id)
    entries = read_attribute_map(&r)
    read_string(&r, &p.trace_id)
    read_tags(&r, p)
    read_optional_string(&r, &p.raw_ref)
    branch = read_long(&r)
    if r.bad:
        return False
    if branch == 0:
        # Flat attributes become the row's JSON; only an empty map is "{}" without Python.
        p.has_body = False
        if entries != 0:
            return False
    elif branch == 1:
        p.has_body = True
        p.time_unix_nano = read_long(&r)
        p.observed_time_unix_nano = read_long(&r)
        number = read_long(&r)
        if number < -2147483648 or number > 2147483647:
            return False
        p.severity_number = <int32_t>number
        read_optional_string(&r, &p.severity_text)
        read_optional_string(&r, &p.body)
        read_string(&r, &p.resource)
        read_string(&r, &p.attributes)
        read_optional_string(&r, &p.log_trace_id)
        read_optional_string(&r, &p.log_span_id)
        read_optional_string(&r, &skipped)  # event_name: not a column
    else:
        return False
    return not r.bad and r.pos == r.end


cdef inline Py_ssize_t text_size(Span s) noexcept nogil:
    return 4 if s.length < 0 else 4 + s.length


cdef inline Py_ssize_t jsonb_size(Span s) noexcept nogil:
    return 4 if s.length < 0 else 5 + s.length


cdef Py_ssize_t row_size(Parsed *p, Py_ssize_t topic_size) noexcept nogil:
    cdef Py_ssize_t size = 2 + topic_size + 8 + 12  # head, topic, partition, offset
    size += (text_size(p.source) + text_size(p.id) + text_size(p.type_) + 12
             + text_size(p.subject) + text_size(p.specversion) + text_size(p.source_type) + 12
             + text_size(p.actor_id) + text_size(p.trace_id) + text_size(p.raw_ref))
    size += 16 if p.tags_count == 0 else 24 + p.tags_bytes
    if p.has_body:
        size += (12 + 12 + 8 + text_size(p.severity_text) + jsonb_size(p.body)
                 + jsonb_size(p.resource) + jsonb_size(p.attributes)
                 + text_size(p.log_trace_id) + text_size(p.log_span_id))
    else:
        size += 4 * 5 + 7 + 7 + 4 + 4  # five nulls, resource and attributes "{}", two nulls
    return size


cdef inline char *put_i32(char *at, int32_t value) noexcept nogil:
    cdef uint32_t v = <uint32_t>value
    at[0] = <char>(v >> 24)
    at[1] = <char>(v >> 16)
    at[2] = <char>(v >> 8)
    at[3] = <char>v
    return at + 4


cdef inline char *put_i64(char *at, int64_t value) noexcept nogil:
    cdef uint64_t v = <uint64_t>value
    cdef int k
    for k in range(8):
        at[k] = <char>(v >> (56 - 8 * k))
    return at + 8


cdef inline char *put_text(char *at, const uint8_t *data, Span s) noexcept nogil:
    at = put_i32(at, -1 if s.length < 0 else <int32_t>s.length)
    if s.length > 0:
        memcpy(at, data + s.start, s.length)
        at += s.length
    return at


cdef inline char *put_jsonb(char *at, const uint8_t *data, Span s) noexcept nogil:
    if s.length < 0:
        return put_i32(at, -1)
    at = put_i32(at, <int32_t>(s.length + 1))
    at[0] = 1  # jsonb's version byte
    at += 1
    if s.length > 0:
        memcpy(at, data + s.start, s.length)
        at += s.length
    return at


cdef inline char *put_empty_object(char *at) noexcept nogil:
    at = put_i32(at, 3)
    at[0] = 1
    at[1] = b'{'
    at[2] = b'}'
    return at + 3


cdef inline char *put_int8(char *at, int64_t value) noexcept nogil:
    return put_i64(put_i32(at, 8), value)


cdef char *put_tags(char *at, const uint8_t *data, Parsed *p) noexcept nogil:
    """text[]: the array header, then each item (the array is read again: it parsed)."""
    cdef Reader r
    cdef int64_t count, k
    cdef Span item
    if p.tags_count == 0:
        at = put_i32(at, 12)
        at = put_i32(at, 0)
        at = put_i32(at, 0)
        return put_i32(at, TEXT_OID)
    at = put_i32(at, <int32_t>(20 + p.tags_bytes))
    at = put_i32(at, 1)
    at = put_i32(at, 0)
    at = put_i32(at, TEXT_OID)
    at = put_i32(at, <int32_t>p.tags_count)
    at = put_i32(at, 1)
    r.data = data
    r.pos = p.tags_at
    r.end = p.value_length
    r.bad = False
    while True:
        count = read_block_count(&r)
        if count == 0:
            return at
        for k in range(count):
            read_string(&r, &item)
            at = put_text(at, data, item)


cdef void write_row(char *at, const uint8_t *data, Parsed *p, const char *topic,
                    Py_ssize_t topic_size, int32_t partition, int64_t offset) noexcept nogil:
    """The row in warehouse.COLUMNS order into ``at`` (``row_size`` bytes)."""
    cdef int k
    at[0] = 0
    at[1] = FIELDS
    at += 2
    at = put_text(at, data, p.source)
    at = put_text(at, data, p.id)
    at = put_text(at, data, p.type_)
    at = put_int8(at, p.time_us)
    at = put_text(at, data, p.subject)
    at = put_text(at, data, p.specversion)
    at = put_text(at, data, p.source_type)
    at = put_int8(at, p.ingested_us)
    at = put_text(at, data, p.actor_id)
    at = put_text(at, data, p.trace_id)
    at = put_tags(at, data, p)
    at = put_text(at, data, p.raw_ref)
    if p.has_body:
        at = put_int8(at, p.time_unix_nano)
        at = put_int8(at, p.observed_time_unix_nano)
        at = put_i32(put_i32(at, 4), p.severity_number)
        at = put_text(at, data, p.severity_text)
        at = put_jsonb(at, data, p.body)
        at = put_jsonb(at, data, p.resource)
        at = put_jsonb(at, data, p.attributes)
        at = put_text(at, data, p.log_trace_id)
        at = put_text(at, data, p.log_span_id)
    else:
        for k in range(5):
            at = put_i32(at, -1)
        at = put_empty_object(at)
        at = put_empty_object(at)
        at = put_i32(at, -1)
        at = put_i32(at, -1)
    memcpy(at, topic, topic_size)
    at += topic_size
    at = put_i32(put_i32(at, 4), partition)
    put_int8(at, offset)


cdef int grow(Out *out, Py_ssize_t more) except -1:
    cdef Py_ssize_t wanted = out.length + more
    cdef Py_ssize_t capacity
    cdef char *buf
    if wanted <= out.capacity:
        return 0
    capacity = max(wanted, out.capacity * 2, 1 << 16)
    buf = <char *>realloc(out.buf, capacity)
    if buf == NULL:
        raise MemoryError()
    out.buf = buf
    out.capacity = capacity
    return 0


cdef bint transcode_into(Out *out, bytes value, bytes topic, uint32_t schema_id,
                         int32_t partition, int64_t offset) except -1:
    """Append the row of ``value`` to ``out``; False (nothing appended) when it is the
    Python path's to read."""
    cdef Parsed p
    cdef const uint8_t *data = <const uint8_t *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t size
    if not parse(data, PyBytes_GET_SIZE(value), schema_id, &p):
        return False
    size = row_size(&p, PyBytes_GET_SIZE(topic))
    grow(out, size)
    write_row(out.buf + out.length, data, &p, PyBytes_AS_STRING(topic), PyBytes_GET_SIZE(topic),
              partition, offset)
    out.length += size
    return True


def transcode(bytes value not None, bytes topic not None, int partition, long long offset,
              unsigned int schema_id):
    """One record's row (``topic`` already a COPY text field), or None: the Python path's."""
    cdef Out out
    out.buf = NULL
    out.length = 0
    out.capacity = 0
    try:
        if not transcode_into(&out, value, topic, schema_id, partition, offset):
            return None
        return PyBytes_FromStringAndSize(out.buf, out.length)
    finally:
        free(out.buf)


def transcode_batch(list messages not None, bytes topic not None, unsigned int schema_id,
                    fallback):
    """The rows of confluent-kafka ``messages``, in order, as one buffer.

    ``fallback(message)`` gives the row of a record this module hands back (bytes), or None
    to leave the record out (it did not decode). Returns ``(data, ends, coordinates,
    native)``: the rows concatenated, where each row ends in ``data``, each row's
    ``(partition, offset)``, and how many rows this module wrote itself."""
    cdef Out out
    cdef Py_ssize_t native = 0
    cdef int32_t partition
    cdef int64_t offset
    cdef list ends = []
    cdef list coordinates = []
    cdef bytes row
    out.buf = NULL
    out.length = 0
    out.capacity = 0
    try:
        for message in messages:
            value = message.value()
            partition = message.partition() or 0
            offset = message.offset() or 0
            if type(value) is bytes and transcode_into(
                &out, value, topic, schema_id, partition, offset
            ):
                native += 1
            else:
                row = fallback(message)
                if row is None:
                    continue
                grow(&out, len(row))
                memcpy(out.buf + out.length, PyBytes_AS_STRING(row), PyBytes_GET_SIZE(row))
                out.length += PyBytes_GET_SIZE(row)
            ends.append(out.length)
            coordinates.append((partition, offset))
        return PyBytes_FromStringAndSize(out.buf, out.length), ends, coordinates, native
    finally:
        free(out.buf)
