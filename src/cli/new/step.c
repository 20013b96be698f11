// A weir step in C: reads the step's input document (JSON) on stdin and writes its
// output on stdout; stderr is the step's log. No SDK: any WASI program is a step.
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    size_t cap = 1 << 16, len = 0, n;
    char *in = malloc(cap);
    if (!in) return 1;
    while ((n = fread(in + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = realloc(in, cap *= 2);
            if (!bigger) return 1;
            in = bigger;
        }
    }
    fprintf(stderr, "got %zu bytes of input\n", len);
    // The input is JSON, so it can be embedded as it is.
    printf("{\"status\": 200, \"body\": {\"lang\": \"c\", \"input\": %.*s}}", (int)len, in);
    return 0;
}
