/* Step 1 of the example chain: greets event.data.name.
 * Output: {"status":200,"body":{"message":"Hello, <name>!","length":<n>}} */
#include "weir_json.h"

int main(void) {
    char name[256] = "world";
    char message[300];
    char *in = wj_read_stdin();
    if (!in) return 1;
    wj_string(wj_get(in, "event.data.name"), name, sizeof name);
    snprintf(message, sizeof message, "Hello, %s!", name);
    fprintf(stderr, "greeting %s\n", name);
    printf("{\"status\":200,\"body\":{\"message\":");
    wj_put_string(stdout, message);
    printf(",\"length\":%zu}}\n", strlen(message));
    free(in);
    return 0;
}
