/* Answers 500 to every input: a broken release, for rollout tests (a canary that
 * fails everything is rolled back). */
#include "weir_json.h"

int main(void) {
    char *in = wj_read_stdin();
    free(in);
    printf("{\"status\":500,\"body\":{\"error\":\"service unavailable\"}}\n");
    return 0;
}
