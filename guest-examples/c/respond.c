/* Answers with the HTTP-like status in event.data.status (default 200) and echoes
 * event.data: exercises 4xx (no retry) and 5xx (retry) handling and `if` edges. */
#include "weir_json.h"

int main(void) {
    char *in = wj_read_stdin();
    if (!in) return 1;
    long status = wj_int(wj_get(in, "event.data.status"), 200);
    const char *data = wj_get(in, "event.data");
    const char *end = data ? wj_skip_value(data) : NULL;
    printf("{\"status\":%ld,\"body\":", status);
    if (data && end) fwrite(data, 1, (size_t)(end - data), stdout);
    else printf("null");
    printf("}\n");
    free(in);
    return 0;
}
