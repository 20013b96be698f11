/* Fails (exit code 1) until ctx.attempt reaches event.data.succeed_on (default 2),
 * then succeeds: exercises retries with backoff. */
#include "weir_json.h"

int main(void) {
    char *in = wj_read_stdin();
    if (!in) return 1;
    long attempt = wj_int(wj_get(in, "ctx.attempt"), -1);
    long succeed_on = wj_int(wj_get(in, "event.data.succeed_on"), 2);
    if (attempt < succeed_on) {
        fprintf(stderr, "attempt %ld: failing on purpose\n", attempt);
        return 1;
    }
    printf("{\"status\":200,\"body\":{\"succeeded_on_attempt\":%ld}}\n", attempt);
    free(in);
    return 0;
}
