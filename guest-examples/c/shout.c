/* Step 2 of the example chain: reads step 1's output from `steps` and shouts it.
 * Output: {"status":200,"body":{"shout":"HELLO, <NAME>!","from_length":<n>}} */
#include <ctype.h>
#include "weir_json.h"

int main(void) {
    char message[512];
    char *in = wj_read_stdin();
    if (!in) return 1;
    if (!wj_string(wj_get(in, "steps.hello.body.message"), message, sizeof message)) {
        fprintf(stderr, "no steps.hello.body.message in the input\n");
        printf("{\"status\":400,\"body\":{\"error\":\"missing steps.hello.body.message\"}}\n");
        return 0;
    }
    long length = wj_int(wj_get(in, "steps.hello.body.length"), -1);
    for (char *c = message; *c; c++) *c = (char)toupper((unsigned char)*c);
    printf("{\"status\":200,\"body\":{\"shout\":");
    wj_put_string(stdout, message);
    printf(",\"from_length\":%ld}}\n", length);
    free(in);
    return 0;
}
