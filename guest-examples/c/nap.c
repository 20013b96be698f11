/* Sleeps event.data.nap_ms milliseconds (default 1000), then answers with a nonce drawn
 * from WASI's random source: two attempts of the same step answer differently, so a test
 * can tell which attempt's output was recorded. */
#include <time.h>
#include <unistd.h>
#include "weir_json.h"

int main(void) {
    char *in = wj_read_stdin();
    if (!in) return 1;
    long ms = wj_int(wj_get(in, "event.data.nap_ms"), 1000);
    long attempt = wj_int(wj_get(in, "ctx.attempt"), -1);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    unsigned char r[8];
    if (getentropy(r, sizeof r) != 0) return 1;
    printf("{\"status\":200,\"body\":{\"attempt\":%ld,\"nonce\":\"", attempt);
    for (unsigned i = 0; i < sizeof r; i++) printf("%02x", r[i]);
    printf("\"}}\n");
    free(in);
    return 0;
}
