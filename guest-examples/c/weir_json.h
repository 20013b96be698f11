/* A tiny JSON reader for weir steps in C: find a value by dotted path in the stdin
 * document, read it as a string or integer, and write JSON strings escaped.
 * Enough for examples; a real step would use a JSON library. */
#ifndef WEIR_JSON_H
#define WEIR_JSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *wj_ws(const char *p) {
    while (p && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

static const char *wj_skip_string(const char *p) {
    if (*p != '"') return NULL;
    for (p++; *p; p++) {
        if (*p == '\\') { if (!*++p) return NULL; }
        else if (*p == '"') return p + 1;
    }
    return NULL;
}

static const char *wj_skip_value(const char *p) {
    p = wj_ws(p);
    if (!p || !*p) return NULL;
    if (*p == '"') return wj_skip_string(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = wj_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = wj_skip_string(wj_ws(p));
                if (!p) return NULL;
                p = wj_ws(p);
                if (*p != ':') return NULL;
                p++;
            }
            p = wj_skip_value(p);
            if (!p) return NULL;
            p = wj_ws(p);
            if (*p == ',') { p++; continue; }
            if (*p == close) return p + 1;
            return NULL;
        }
    }
    while (*p && !strchr(",}] \n\r\t", *p)) p++;
    return p;
}

/* The value of `key` in the object starting at p, or NULL. */
static const char *wj_member(const char *p, const char *key, size_t klen) {
    p = wj_ws(p);
    if (!p || *p != '{') return NULL;
    p = wj_ws(p + 1);
    while (p && *p == '"') {
        const char *k = p + 1;
        const char *end = wj_skip_string(p);
        if (!end) return NULL;
        p = wj_ws(end);
        if (*p != ':') return NULL;
        p = wj_ws(p + 1);
        if ((size_t)(end - 1 - k) == klen && strncmp(k, key, klen) == 0) return p;
        p = wj_ws(wj_skip_value(p));
        if (!p || *p != ',') return NULL;
        p = wj_ws(p + 1);
    }
    return NULL;
}

/* The value at a dotted path such as "event.data.name", or NULL. */
static const char *wj_get(const char *doc, const char *path) {
    const char *p = doc;
    while (p && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        p = wj_member(p, path, n);
        path += n + (dot ? 1 : 0);
    }
    return p;
}

/* Copies the string value at v into out (unescaping \" and \\); 0 if not a string. */
static int wj_string(const char *v, char *out, size_t cap) {
    size_t i = 0;
    if (!v || *v != '"' || cap == 0) return 0;
    for (v++; *v && *v != '"' && i + 1 < cap; v++) {
        if (*v == '\\' && v[1]) v++;
        out[i++] = *v;
    }
    out[i] = 0;
    return 1;
}

/* The integer at v, or dflt. */
static long wj_int(const char *v, long dflt) {
    char *end;
    long n;
    if (!v) return dflt;
    n = strtol(v, &end, 10);
    return end == v ? dflt : n;
}

/* Writes s as a JSON string. */
static void wj_put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Reads all of stdin into a NUL-terminated buffer (caller frees). */
static char *wj_read_stdin(void) {
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    while ((n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) { free(buf); return NULL; }
            buf = bigger;
            cap *= 2;
        }
    }
    buf[len] = 0;
    return buf;
}

#endif
