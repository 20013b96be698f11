/* Hostile: answers with a giant JSON document (8 MiB of string), more than any sane
 * output cap allows. */
#include <stdio.h>

int main(void) {
    fputs("{\"status\":200,\"body\":\"", stdout);
    for (int i = 0; i < 8 * 1024; i++) {
        for (int j = 0; j < 1024; j++) putchar('x');
    }
    fputs("\"}\n", stdout);
    return 0;
}
